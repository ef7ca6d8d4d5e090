package io.lazypull.backend.loopback;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.InetAddress;
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
 * generated config, filesystem storage under a given directory and redirects off: open, with
 * htpasswd (bcrypt) auth, or with token auth against a given token service. For tests and
 * benchmarks; {@link #close()} kills it, and a shutdown hook does if the JVM dies first.
 */
public final class RegistryServer implements AutoCloseable {
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

  /** The docker-registry executable on PATH, or null. */
  public static Path find() {
    for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      Path p = Path.of(d.isEmpty() ? "." : d, "docker-registry");
      if (Files.isExecutable(p)) {
        return p;
      }
    }
    return null;
  }

  /** A registry without authentication. */
  public static RegistryServer open(Path dir) throws Exception {
    return start(dir, "");
  }

  /** A registry with one htpasswd user (bcrypt, made with {@code htpasswd -Bbn}). */
  public static RegistryServer htpasswd(Path dir, String user, String password) throws Exception {
    Process p = new ProcessBuilder("htpasswd", "-Bbn", user, password).redirectErrorStream(true).start();
    String line = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("htpasswd failed: " + line);
    }
    Path file = dir.resolve("htpasswd");
    Files.writeString(file, line + "\n");
    return start(dir, "auth:\n  htpasswd:\n    realm: lazypull-test\n    path: " + file + "\n");
  }

  /** A registry that trusts bearer tokens signed by the certificate in {@code rootCertBundle}. */
  public static RegistryServer token(Path dir, String realm, String service, String issuer, Path rootCertBundle)
      throws Exception {
    return start(dir, "auth:\n  token:\n    realm: " + realm + "\n    service: " + service + "\n    issuer: " + issuer
        + "\n    rootcertbundle: " + rootCertBundle + "\n");
  }

  private static RegistryServer start(Path dir, String authYaml) throws Exception {
    Path exe = find();
    if (exe == null) {
      throw new IOException("docker-registry is not installed (apt-get install docker-registry)");
    }
    Exception last = null;
    for (int attempt = 0; attempt < 3; attempt++) { // the free port may be taken meanwhile
      int port;
      try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        port = s.getLocalPort();
      }
      Path data = Files.createDirectories(dir.resolve("data"));
      Path config = dir.resolve("config.yml");
      Files.writeString(config, "version: 0.1\n"
          + "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
          + "storage:\n  filesystem:\n    rootdirectory: " + data + "\n"
          + "  redirect:\n    disable: true\n  delete:\n    enabled: true\n"
          + "  maintenance:\n    uploadpurging:\n      enabled: false\n"
          + "http:\n  addr: 127.0.0.1:" + port + "\n  secret: lazypull-local-" + port + "\n"
          + authYaml);
      Process p = new ProcessBuilder(exe.toString(), "serve", config.toString())
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
        throw new IllegalStateException("docker-registry exited with " + process.exitValue() + ": " + log());
      }
      try {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + port + "/v2/").openConnection();
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

  /** The last lines of the registry's log. */
  public String log() {
    try {
      List<String> lines = Files.readAllLines(dir.resolve("registry.log"));
      return String.join("\n", new ArrayList<>(lines.subList(Math.max(0, lines.size() - 20), lines.size())));
    } catch (IOException e) {
      return "(no log)";
    }
  }

  public int port() {
    return port;
  }

  public String hostPort() {
    return "127.0.0.1:" + port;
  }

  /** oci+http://127.0.0.1:PORT/REPOSITORY */
  public String uri(String repository) {
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
