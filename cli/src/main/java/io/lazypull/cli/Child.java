package io.lazypull.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A lazypull subcommand run as a child process of this JVM (same java, same class path), its
 * output copied to ours line by line with a prefix, so that 'up' shows one readable log.
 */
final class Child implements AutoCloseable {
  private final String name;
  private final List<String> command;
  private Process process;

  private Child(String name, List<String> command) {
    this.name = name;
    this.command = command;
  }

  /** {@code lazypull <args>} in a new JVM with heap {@code heap} (e.g. "256m"). */
  static Child lazypull(String name, String heap, List<String> args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.add("-Xmx" + heap);
    cmd.add("-XX:+UseSerialGC");
    String jnaTmp = System.getProperty("jna.tmpdir");
    if (jnaTmp != null) {
      cmd.add("-Djna.tmpdir=" + jnaTmp);
    }
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(Main.class.getName());
    cmd.addAll(args);
    return new Child(name, cmd);
  }

  Child start() throws IOException {
    process = new ProcessBuilder(command).redirectErrorStream(true).start();
    Thread pump = new Thread(() -> copy(process, name, System.err), name + "-log");
    pump.setDaemon(true);
    pump.start();
    return this;
  }

  private static void copy(Process p, String name, PrintStream out) {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        out.println("[" + name + "] " + line);
      }
    } catch (IOException e) {
      // the child is gone
    }
  }

  String name() {
    return name;
  }

  long pid() {
    return process.pid();
  }

  boolean isAlive() {
    return process != null && process.isAlive();
  }

  int exitValue() {
    return process.exitValue();
  }

  Process process() {
    return process;
  }

  /** SIGTERM, then SIGKILL if it has not exited within {@code seconds}. */
  void stop(int seconds) {
    if (process == null || !process.isAlive()) {
      return;
    }
    process.destroy();
    try {
      if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    stop(10);
  }
}
