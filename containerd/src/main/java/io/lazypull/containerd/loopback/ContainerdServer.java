package io.lazypull.containerd.loopback;

import io.lazypull.containerd.ContainerdClient;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Debian's containerd (1.6) run for tests and benchmarks: its own config, root, state and
 * socket under one directory, no CRI, proxy snapshotters as given; stopped (and its shims,
 * containers and mounts cleaned up) by {@link #close}. Needs root, containerd, ctr and runc.
 */
public final class ContainerdServer implements AutoCloseable {
  private final Process process;
  private final Path dir;
  private final Path socket;
  private final Thread hook;

  private ContainerdServer(Process process, Path dir, Path socket) {
    this.process = process;
    this.dir = dir;
    this.socket = socket;
    this.hook = new Thread(process::destroyForcibly, "kill containerd");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** The result of a ctr command. */
  public record Result(int code, String out) {}

  /**
   * Starts containerd under {@code dir} with a proxy snapshotter for each entry of
   * {@code snapshotters} (name to socket); returns once it answers (at most 60 s).
   */
  public static ContainerdServer start(Path dir, Map<String, Path> snapshotters) throws Exception {
    dir = dir.toAbsolutePath();
    Files.createDirectories(dir);
    Path socket = dir.resolve("containerd.sock");
    StringBuilder c = new StringBuilder();
    c.append("version = 2\n");
    c.append("root = \"").append(dir.resolve("root")).append("\"\n");
    c.append("state = \"").append(dir.resolve("state")).append("\"\n");
    c.append("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
    c.append("[grpc]\n  address = \"").append(socket).append("\"\n");
    c.append("[ttrpc]\n  address = \"").append(dir.resolve("containerd.sock.ttrpc")).append("\"\n");
    c.append("[debug]\n  level = \"info\"\n");
    for (Map.Entry<String, Path> s : snapshotters.entrySet()) {
      c.append("[proxy_plugins.").append(s.getKey()).append("]\n  type = \"snapshot\"\n  address = \"")
          .append(s.getValue().toAbsolutePath()).append("\"\n");
    }
    Path config = dir.resolve("config.toml");
    Files.writeString(config, c.toString());
    Process p = new ProcessBuilder("containerd", "--config", config.toString())
        .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("containerd.log").toFile()))
        .start();
    ContainerdServer server = new ContainerdServer(p, dir, socket);
    try (ContainerdClient client = ContainerdClient.connect(socket, "default", Duration.ofSeconds(5))) {
      for (int i = 0; ; i++) {
        if (!p.isAlive()) {
          throw new IOException("containerd exited with " + p.exitValue() + ": " + server.log());
        }
        try {
          client.version();
          break;
        } catch (IOException e) {
          if (i >= 600) {
            throw new IOException("containerd did not answer within 60 s: " + e.getMessage());
          }
          Thread.sleep(100);
        }
      }
    } catch (Exception e) {
      server.close();
      throw e;
    }
    return server;
  }

  public Path socket() {
    return socket;
  }

  /** {@code ctr -a SOCKET ARGS...}, bounded by {@code timeout}; output and errors together. */
  public Result ctr(Duration timeout, String... args) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>(List.of("ctr", "-a", socket.toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    byte[][] out = new byte[1][];
    Thread reader = new Thread(() -> {
      try {
        out[0] = p.getInputStream().readAllBytes();
      } catch (IOException e) {
        out[0] = new byte[0];
      }
    }, "ctr-output");
    reader.start();
    if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      p.destroyForcibly();
      reader.join(5000);
      throw new IOException("ctr " + String.join(" ", args) + " did not finish within " + timeout.toSeconds() + " s");
    }
    reader.join(5000);
    return new Result(p.exitValue(), new String(out[0] == null ? new byte[0] : out[0], StandardCharsets.UTF_8));
  }

  /** containerd's log so far. */
  public String log() {
    try {
      return Files.readString(dir.resolve("containerd.log"));
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  /**
   * Kills the tasks left running, stops containerd, then its shims, and unmounts whatever is
   * still mounted under its directory (container rootfs, the shims' mounts).
   */
  @Override
  public void close() {
    try {
      Result tasks = ctr(Duration.ofSeconds(30), "tasks", "ls", "-q");
      for (String id : tasks.out().split("\n")) {
        if (!id.isBlank()) {
          ctr(Duration.ofSeconds(30), "tasks", "kill", "-s", "SIGKILL", id.strip());
        }
      }
    } catch (IOException | InterruptedException e) {
      // containerd is gone already
    }
    process.destroy();
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    // containerd-shim-runc-v2 processes of this instance name its state dir on their command line
    ProcessHandle.allProcesses()
        .filter(h -> h.info().commandLine().map(l -> l.contains("containerd-shim") && l.contains(socket.toString())).orElse(false))
        .forEach(ProcessHandle::destroyForcibly);
    try {
      List<String> mounts = Files.readAllLines(Path.of("/proc/self/mountinfo"));
      List<String> ours = new ArrayList<>();
      for (String m : mounts) {
        String target = m.split(" ")[4];
        if (target.startsWith(dir.toString())) {
          ours.add(target);
        }
      }
      ours.sort(java.util.Comparator.reverseOrder());
      for (String t : ours) {
        new ProcessBuilder("umount", "-l", t).redirectErrorStream(true).start().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (IOException | InterruptedException e) {
      // best effort
    }
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down
    }
  }
}
