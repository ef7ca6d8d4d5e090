package io.lazypull.backend;

import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Debian's {@code docker-registry} (CNCF Distribution) as a child process on 127.0.0.1 with a
 * generated config and filesystem storage in a fresh directory. Always {@link #close()} it
 * (the tests do in {@code @AfterAll}); a shutdown hook kills it too if the JVM dies first.
 */
final class RegistryServer implements AutoCloseable {
  private final Process process;
  private final int port;
  private final Path dir;
  private final Thread hook;

  private RegistryServer(Process process, int port, Path dir) {
    this.process = process;
    this.port = port;
    this.dir = dir;
    this.hook = new Thread(process::destroyForcibly, "kill docker-registry");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** Skips the calling test (with a printed reason) when docker-registry is not installed. */
  static void assumeInstalled() {
    Requirements.assumeCommand("docker-registry");
  }

  static RegistryServer open(Path dir) throws Exception {
    return start(dir, "");
  }

  static RegistryServer htpasswd(Path dir, String user, String password) throws Exception {
    Requirements.assumeCommand("htpasswd");
    Process p = new ProcessBuilder("htpasswd", "-Bbn", user, password)
        .redirectErrorStream(true).start();
    String line = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("htpasswd failed: " + line);
    }
    Path file = dir.resolve("htpasswd");
    Files.writeString(file, line + "\n");
    return start(dir, "auth:\n  htpasswd:\n    realm: lazypull-test\n    path: " + file + "\n");
  }

  static RegistryServer token(Path dir, TokenServer tokens) throws Exception {
    return start(dir, "auth:\n  token:\n"
        + "    realm: " + tokens.realm() + "\n"
        + "    service: " + TokenServer.SERVICE + "\n"
        + "    issuer: " + TokenServer.ISSUER + "\n"
        + "    rootcertbundle: " + tokens.certificatePem() + "\n");
  }

  private static RegistryServer start(Path dir, String authYaml) throws Exception {
    assumeInstalled();
    Exception last = null;
    for (int attempt = 0; attempt < 3; attempt++) { // the free port may be taken meanwhile
      int port;
      try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
        port = s.getLocalPort();
      }
      Path data = dir.resolve("data");
      Files.createDirectories(data);
      Path config = dir.resolve("config.yml");
      Files.writeString(config, "version: 0.1\n"
          + "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
          + "storage:\n  filesystem:\n    rootdirectory: " + data + "\n"
          + "  redirect:\n    disable: true\n  delete:\n    enabled: true\n"
          + "  maintenance:\n    uploadpurging:\n      enabled: false\n"
          + "http:\n  addr: 127.0.0.1:" + port + "\n  secret: lazypull-test-http-secret\n"
          + authYaml);
      Process p = new ProcessBuilder("docker-registry", "serve", config.toString())
          .redirectErrorStream(true)
          .redirectOutput(dir.resolve("registry.log").toFile())
          .start();
      RegistryServer server = new RegistryServer(p, port, dir);
      try {
        server.awaitReady();
        return server;
      } catch (Exception e) {
        server.close();
        last = e;
      }
    }
    throw last;
  }

  private void awaitReady() throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("docker-registry exited with " + process.exitValue()
            + ": " + log());
      }
      try {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + port + "/v2/")
            .openConnection();
        c.setConnectTimeout(500);
        c.setReadTimeout(2000);
        int status = c.getResponseCode(); // 200 open, 401 with auth: either way it serves
        c.disconnect();
        if (status == 200 || status == 401) {
          return;
        }
      } catch (IOException notYet) {
        // not listening yet
      }
      Thread.sleep(50);
    }
    throw new IllegalStateException("docker-registry did not answer within 15 s: " + log());
  }

  String log() {
    try {
      List<String> lines = Files.readAllLines(dir.resolve("registry.log"));
      return String.join("\n", new ArrayList<>(lines.subList(Math.max(0, lines.size() - 20), lines.size())));
    } catch (IOException e) {
      return "(no log)";
    }
  }

  int port() {
    return port;
  }

  String hostPort() {
    return "127.0.0.1:" + port;
  }

  /** oci+http://127.0.0.1:PORT/REPOSITORY */
  String uri(String repository) {
    return "oci+http://" + hostPort() + "/" + repository;
  }

  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook runs anyway
    }
  }
}
