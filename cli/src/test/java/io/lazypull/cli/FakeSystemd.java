package io.lazypull.cli;

import io.lazypull.sys.Posix;
import io.lazypull.sys.Spawn;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What systemd does for a service with {@code FileDescriptorStoreMax=1} and
 * {@code Restart=always}, as far as lazypull's daemon can tell: it listens on a
 * {@code $NOTIFY_SOCKET}, keeps the fd sent with {@code FDSTORE=1}, and starts the service
 * again with that fd as fd 3 and {@code LISTEN_FDS=1 LISTEN_PID=<pid> LISTEN_FDNAMES=...}.
 */
final class FakeSystemd implements AutoCloseable {
  private final UnixSocket notify;
  final Path notifyPath;
  private final Thread receiver;
  private volatile int storedFd = -1;
  private volatile String storedName;
  volatile int readyCount;

  FakeSystemd(Path dir) throws IOException {
    notifyPath = dir.resolve("notify.sock");
    Files.deleteIfExists(notifyPath);
    notify = UnixSocket.bindDatagram(notifyPath, 0600);
    receiver = new Thread(this::receive, "fake-systemd");
    receiver.setDaemon(true);
    receiver.start();
  }

  private void receive() {
    ByteBuffer buf = ByteBuffer.allocate(4096);
    while (!notify.isClosed()) {
      try {
        buf.clear();
        UnixSocket.Received r = notify.receive(buf);
        if (r.eof()) {
          return;
        }
        String text = new String(buf.array(), 0, r.bytes(), StandardCharsets.US_ASCII);
        if (text.contains("FDSTORE=1") && r.fds().length == 1) {
          int old = storedFd;
          storedFd = r.fds()[0];
          storedName = text.lines().filter(l -> l.startsWith("FDNAME=")).map(l -> l.substring(7))
              .findFirst().orElse("stored");
          if (old >= 0) {
            Posix.closeQuietly(old);
          }
        } else {
          r.closeFds();
        }
        if (text.contains("READY=1")) {
          readyCount++;
        }
      } catch (IOException e) {
        return;
      }
    }
  }

  boolean holdsFd() {
    return storedFd >= 0;
  }

  /**
   * Starts {@code lazypull <args>} as systemd would: NOTIFY_SOCKET, and if an fd is stored, as
   * fd 3 with LISTEN_* (LISTEN_PID is the child's own pid: the shell sets it before exec).
   * Returns the pid.
   */
  int start(List<String> lazypullArgs, Map<String, String> extraEnv, Path log) throws IOException {
    Child template = Child.lazypull("daemon", "384m", lazypullArgs);
    List<String> javaCmd = template.command();
    // Output to a file: the test JVM's own stdout belongs to the test runner.
    StringBuilder script = new StringBuilder("exec >>'" + log + "' 2>&1; export LISTEN_PID=$$; exec");
    for (String a : javaCmd) {
      script.append(" '").append(a.replace("'", "'\\''")).append("'");
    }
    Map<String, String> env = new HashMap<>(System.getenv());
    env.putAll(extraEnv);
    env.put("NOTIFY_SOCKET", notifyPath.toString());
    env.remove("LISTEN_PID");
    List<Integer> fds = new ArrayList<>();
    if (storedFd >= 0) {
      env.put("LISTEN_FDS", "1");
      env.put("LISTEN_FDNAMES", storedName);
      fds.add(storedFd);
    } else {
      env.remove("LISTEN_FDS");
      env.remove("LISTEN_FDNAMES");
    }
    return Spawn.spawn(List.of("/bin/sh", "-c", script.toString()), env,
        fds.stream().mapToInt(Integer::intValue).toArray());
  }

  /** Like systemd stopping the unit for good: the stored fd is closed. */
  @Override
  public void close() {
    notify.close();
    if (storedFd >= 0) {
      Posix.closeQuietly(storedFd);
      storedFd = -1;
    }
    try {
      Files.deleteIfExists(notifyPath);
    } catch (IOException e) {
      // best effort
    }
  }
}
