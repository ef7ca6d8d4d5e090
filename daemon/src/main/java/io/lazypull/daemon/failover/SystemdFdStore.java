package io.lazypull.daemon.failover;

import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.OptionalInt;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * systemd's file descriptor store as the device's holder: the daemon sends the device fd with
 * {@code FDSTORE=1} on {@code $NOTIFY_SOCKET}; when the service restarts (after a crash, with
 * {@code Restart=always}), systemd passes it back as fd 3.. with {@code LISTEN_FDS},
 * {@code LISTEN_PID} and {@code LISTEN_FDNAMES}. The unit needs {@code FileDescriptorStoreMax=}
 * of at least 1 (see dist/systemd/lazypull-daemon.service).
 */
public final class SystemdFdStore {
  private static final Logger log = LoggerFactory.getLogger(SystemdFdStore.class);
  /** The name the device fd is stored under. */
  public static final String FD_NAME = "lazypull-device";
  private static final int SD_LISTEN_FDS_START = 3;

  private final Map<String, String> env;
  private final long pid;

  SystemdFdStore(Map<String, String> env, long pid) {
    this.env = env;
    this.pid = pid;
  }

  /** The store of this process's environment, or null when not run by systemd (no NOTIFY_SOCKET). */
  public static SystemdFdStore fromEnvironment() {
    Map<String, String> env = System.getenv();
    return env.containsKey("NOTIFY_SOCKET") ? new SystemdFdStore(env, ProcessHandle.current().pid()) : null;
  }

  /** The device fd systemd passed back, if this start is a restart with a stored device. */
  public OptionalInt recover() throws ErrnoException {
    String listenPid = env.get("LISTEN_PID");
    String listenFds = env.get("LISTEN_FDS");
    if (listenPid == null || listenFds == null) {
      return OptionalInt.empty();
    }
    if (Long.parseLong(listenPid.strip()) != pid) {
      log.debug("LISTEN_PID {} is not our pid {}: the fds are not for us", listenPid, pid);
      return OptionalInt.empty();
    }
    int n = Integer.parseInt(listenFds.strip());
    String[] names = env.getOrDefault("LISTEN_FDNAMES", "").split(":", -1);
    for (int i = 0; i < n; i++) {
      if (i < names.length && names[i].equals(FD_NAME)) {
        int fd = SD_LISTEN_FDS_START + i;
        Posix.setCloexec(fd); // systemd passes them inheritable; ours must not leak into children
        log.info("recovered the device fd {} from systemd's fd store", fd);
        return OptionalInt.of(fd);
      }
    }
    return OptionalInt.empty();
  }

  /** Stores {@code fd} in systemd's fd store under {@link #FD_NAME}. */
  public void store(int fd) throws IOException {
    send("FDSTORE=1\nFDNAME=" + FD_NAME + "\n", fd);
    log.info("stored the device fd in systemd's fd store");
  }

  /** Tells systemd the service is ready (for Type=notify units). */
  public void notifyReady() throws IOException {
    send("READY=1\n");
  }

  private void send(String text, int... fds) throws IOException {
    String path = env.get("NOTIFY_SOCKET");
    try (UnixSocket s = UnixSocket.connect(Path.of(path), UnixSocket.Type.DGRAM)) {
      s.send(ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII)), fds);
    } catch (ErrnoException e) {
      throw new IOException("cannot notify systemd on $NOTIFY_SOCKET " + path + ": " + e.getMessage(), e);
    }
  }
}
