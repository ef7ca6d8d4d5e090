package io.lazypull.cli;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Debian's {@code docker-registry} (CNCF Distribution) as a child process on 127.0.0.1, open
 * (no auth), filesystem storage under a given directory, redirects off. For the backends
 * benchmark and the CLI tests; {@link #close()} kills it (a shutdown hook too).
 */
final class RegistryLauncher implements AutoCloseable {
  private final Process process;
  private final int port;
  private final Thread hook;

  private RegistryLauncher(Process process, int port) {
    this.process = process;
    this.port = port;
    this.hook = new Thread(process::destroyForcibly, "kill docker-registry");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** The docker-registry executable on PATH, or null. */
  static Path find() {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      Path p = Path.of(dir.isEmpty() ? "." : dir, "docker-registry");
      if (Files.isExecutable(p)) {
        return p;
      }
    }
    return null;
  }

  static RegistryLauncher start(Path dir) throws IOException, InterruptedException {
    Path exe = find();
    if (exe == null) {
      throw new IOException("docker-registry is not installed (apt-get install docker-registry)");
    }
    IOException last = null;
    for (int attempt = 0; attempt < 3; attempt++) {
      int port;
      try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        port = s.getLocalPort();
      }
      Path data = Files.createDirectories(dir.resolve("data"));
      Path config = dir.resolve("config.yml");
      Files.writeString(config, "version: 0.1\n"
          + "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
          + "storage:\n  filesystem:\n    rootdirectory: " + data + "\n"
          + "  redirect:\n    disable: true\n"
          + "  maintenance:\n    uploadpurging:\n      enabled: false\n"
          + "http:\n  addr: 127.0.0.1:" + port + "\n  secret: lazypull-local-" + port + "\n");
      Process p = new ProcessBuilder(exe.toString(), "serve", config.toString())
          .redirectErrorStream(true)
          .redirectOutput(dir.resolve("registry.log").toFile())
          .start();
      RegistryLauncher r = new RegistryLauncher(p, port);
      try {
        r.awaitReady(dir);
        return r;
      } catch (IOException e) {
        r.close();
        last = e;
      }
    }
    throw last;
  }

  private void awaitReady(Path dir) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IOException("docker-registry exited with " + process.exitValue() + " (see "
            + dir.resolve("registry.log") + ")");
      }
      try {
        HttpURLConnection c = (HttpURLConnection) new URL("http://127.0.0.1:" + port + "/v2/")
            .openConnection();
        c.setConnectTimeout(500);
        c.setReadTimeout(2000);
        int status = c.getResponseCode();
        c.disconnect();
        if (status == 200) {
          return;
        }
      } catch (IOException notYet) {
        // not listening yet
      }
      Thread.sleep(50);
    }
    throw new IOException("docker-registry did not answer within 15 s");
  }

  int port() {
    return port;
  }

  /** oci+http://127.0.0.1:PORT/REPOSITORY */
  String uri(String repository) {
    return "oci+http://127.0.0.1:" + port + "/" + repository;
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
      // it runs anyway
    }
  }
}
