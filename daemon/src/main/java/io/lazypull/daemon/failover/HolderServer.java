package io.lazypull.daemon.failover;

import io.lazypull.protocol.HolderWire;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the device fd across daemon deaths. The kernel (and the fuse-shim) tear the cache down
 * when the last copy of the device fd closes; as long as this process lives, a daemon may die
 * and the next one picks the device up, writes {@code restore}, and every pending read goes on.
 *
 * <p>It holds only the device fd, never an object's anon fd (the kernel spec's rule: an anon
 * fd kept alive elsewhere would keep its object OPEN, and the next daemon could not complete
 * its reads). It hands the device out to one daemon at a time, the lease holder; the next
 * daemon gets it only once the previous one is gone (its process exited, so all its anon fds
 * are closed) or released it gracefully, so {@code restore} is written after the previous
 * instance is gone, as the kernel requires.
 *
 * <p>The socket is created mode 0600 and every peer's credentials are checked (SO_PEERCRED:
 * our uid or root).
 */
public final class HolderServer implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(HolderServer.class);

  private final Path path;
  private final UnixSocket listener;
  private final int myUid = Posix.getuid();
  private final Object lock = new Object();
  // guarded by lock
  private int deviceFd = -1;
  private Conn lease;
  private final Deque<Conn> waiting = new ArrayDeque<>();
  private final GroupKeeper groupKeeper;
  private volatile boolean closed;

  private HolderServer(Path path, UnixSocket listener, long relayGraceMillis) {
    this.path = path;
    this.listener = listener;
    this.groupKeeper = new GroupKeeper(relayGraceMillis);
  }

  /** How long reads wait for a new fanotify relay after one died, by default. */
  public static final long RELAY_GRACE_MILLIS = 30_000;

  /** Listens on {@code path} (mode 0600). A stale socket file nobody listens on is replaced. */
  public static HolderServer listen(Path path) throws IOException {
    return listen(path, RELAY_GRACE_MILLIS);
  }

  /**
   * The same, with the time reads of a dead fanotify relay's mounts wait for a successor before
   * they get EIO ({@link GroupKeeper}).
   */
  public static HolderServer listen(Path path, long relayGraceMillis) throws IOException {
    if (Files.exists(path)) {
      try (UnixSocket probe = UnixSocket.connect(path, UnixSocket.Type.SEQPACKET)) {
        throw new IOException("a holder is already listening on " + path);
      } catch (ErrnoException e) {
        log.info("removing stale socket {} ({})", path, e.getMessage());
        Files.delete(path);
      }
    }
    Files.createDirectories(path.toAbsolutePath().getParent());
    return new HolderServer(path, UnixSocket.listen(path, UnixSocket.Type.SEQPACKET, 0600, 16), relayGraceMillis);
  }

  /** Accepts connections until {@link #close()}; each connection is served by its own thread. */
  public void serve() throws IOException {
    log.info("holder listening on {}", path);
    while (!closed) {
      UnixSocket s = listener.accept();
      if (s == null) {
        break;
      }
      UnixSocket.PeerCredentials cred;
      try {
        cred = s.peerCredentials();
      } catch (ErrnoException e) {
        s.close();
        continue;
      }
      if (cred.uid() != myUid && cred.uid() != 0) {
        log.warn("refusing pid {} uid {}: only uid {} or root may use this holder", cred.pid(), cred.uid(), myUid);
        s.close();
        continue;
      }
      Conn c = new Conn(s, cred.pid());
      Thread t = new Thread(c::run, "holder-conn-" + cred.pid());
      t.setDaemon(true);
      t.start();
    }
  }

  /** True if a device fd is held. */
  public boolean holdsDevice() {
    synchronized (lock) {
      return deviceFd >= 0;
    }
  }

  /**
   * True while this holder keeps the fanotify group of a relay that died or stopped while a
   * mount still used its cache files.
   */
  public boolean guardsFanotifyGroup() {
    return groupKeeper.guarding();
  }

  /**
   * True while this holder keeps a fanotify group whose cache files a mount still has open (also
   * a lazily detached one), whether its relay is alive or not: if the holder stopped now, the
   * relay's death (maybe under way: a stack's processes are stopped together) would let reads of
   * holes return zeros. The holder must not stop then.
   */
  public boolean keepsGroupInUse() {
    return groupKeeper.mustOutlive();
  }

  /** Stops serving and closes the device fd: if no daemon has it open, the device dies. */
  @Override
  public void close() {
    closed = true;
    listener.close();
    groupKeeper.close();
    synchronized (lock) {
      if (deviceFd >= 0) {
        Posix.closeQuietly(deviceFd);
        deviceFd = -1;
      }
    }
    try {
      Files.deleteIfExists(path);
    } catch (IOException e) {
      log.debug("removing {}: {}", path, e.getMessage());
    }
  }

  private final class Conn {
    final UnixSocket socket;
    final int pid;
    boolean released; // RELEASE received: its anon fds are closed, no need to wait for its exit

    Conn(UnixSocket socket, int pid) {
      this.socket = socket;
      this.pid = pid;
    }

    void run() {
      try {
        HolderWire.Line line;
        while ((line = HolderWire.receive(socket)) != null) {
          handle(line);
        }
      } catch (IOException e) {
        log.debug("connection of pid {}: {}", pid, e.getMessage());
      } finally {
        disconnected();
      }
    }

    void handle(HolderWire.Line line) throws IOException {
      switch (line.word()) {
        case "TAKE" -> take(Long.parseLong(line.arg().isEmpty() ? "0" : line.arg()));
        case "PUT" -> put(line);
        case "RELEASE" -> {
          synchronized (lock) {
            released = true;
          }
          HolderWire.send(socket, "OK");
        }
        case "UPGRADE" -> upgrade();
        case "STATUS" -> HolderWire.send(socket, status());
        case "GROUP" -> groupKeeper.handle(this, pid, socket, line); // keeps or closes the fds
        default -> {
          line.closeFds();
          HolderWire.send(socket, "ERR unknown command " + line.word());
        }
      }
      if (!line.word().equals("PUT") && !line.word().equals("GROUP")) {
        line.closeFds();
      }
    }

    private void take(long waitMillis) throws IOException {
      synchronized (lock) {
        if (lease == this) {
          HolderWire.send(socket, "ERR already holding the lease");
          return;
        }
        waiting.add(this);
        grantLocked();
        if (lease == this || waitMillis == 0) {
          if (lease != this) {
            waiting.remove(this);
            HolderWire.send(socket, "BUSY " + lease.pid);
          }
          return;
        }
      }
      if (waitMillis > 0) {
        // Answer BUSY when the deadline passes, unless granted meanwhile.
        Thread t = new Thread(() -> {
          try {
            Thread.sleep(waitMillis);
          } catch (InterruptedException e) {
            return;
          }
          synchronized (lock) {
            if (waiting.remove(this)) {
              try {
                HolderWire.send(socket, "BUSY " + (lease == null ? 0 : lease.pid));
              } catch (ErrnoException e) {
                log.debug("pid {}: {}", pid, e.getMessage());
              }
            }
          }
        }, "holder-take-timeout");
        t.setDaemon(true);
        t.start();
      } else {
        log.info("pid {} waits as a standby", pid);
      }
    }

    private void put(HolderWire.Line line) throws IOException {
      synchronized (lock) {
        if (line.fds().length != 1) {
          line.closeFds();
          HolderWire.send(socket, "ERR PUT needs exactly one fd");
        } else if (lease != this) {
          line.closeFds();
          HolderWire.send(socket, "ERR only the active daemon may store the device");
        } else if (deviceFd >= 0) {
          line.closeFds();
          HolderWire.send(socket, "ERR a device is already held; adopt it instead of binding a new one");
        } else {
          deviceFd = line.fds()[0];
          log.info("holding the device fd of pid {}", pid);
          HolderWire.send(socket, "OK");
        }
      }
    }

    private void upgrade() throws IOException {
      synchronized (lock) {
        if (lease == null) {
          HolderWire.send(socket, "ERR no active daemon");
        } else if (waiting.isEmpty()) {
          HolderWire.send(socket, "ERR no standby daemon is waiting (start one with 'lazypull daemon --standby')");
        } else {
          log.info("upgrade: asking pid {} to hand over to pid {}", lease.pid, waiting.peek().pid);
          try {
            HolderWire.send(lease.socket, "HANDOVER");
          } catch (ErrnoException e) {
            // Its lease connection is closed: it is dying, and the standby gets the device once
            // it has exited. Say so; the asker's connection is not at fault.
            log.info("upgrade: pid {} is already going away ({})", lease.pid, e.getMessage());
            HolderWire.send(socket, "ERR the active daemon (pid " + lease.pid
                + ") is already going away; the standby takes over once it has exited");
            return;
          }
          HolderWire.send(socket, "OK " + lease.pid);
        }
      }
    }

    private void disconnected() {
      socket.close();
      groupKeeper.disconnected(this);
      Conn previous;
      boolean graceful;
      synchronized (lock) {
        waiting.remove(this);
        if (lease != this) {
          return;
        }
        previous = this;
        graceful = released;
      }
      if (!graceful) {
        // Crash path: the lease socket may close before the rest of the dead daemon's fds; wait
        // until the process has exited (its anon fds are closed then) before handing over.
        waitForExit(previous.pid);
      }
      synchronized (lock) {
        lease = null;
        log.info("daemon pid {} {}", previous.pid, graceful ? "released the device" : "is gone");
        grantLocked();
      }
    }

    private String status() {
      synchronized (lock) {
        return "held=" + (deviceFd >= 0) + " active=" + (lease == null ? "-" : Integer.toString(lease.pid))
            + " waiting=" + waiting.size() + " " + groupKeeper.status();
      }
    }
  }

  /** Gives the lease to the first waiting connection, if it is free. Holds {@code lock}. */
  private void grantLocked() {
    while (lease == null && !waiting.isEmpty()) {
      Conn next = waiting.poll(); // a TAKE that timed out was removed by its timer already
      dropDeviceIfDead();
      try {
        if (deviceFd >= 0) {
          HolderWire.send(next.socket, "FD", deviceFd);
        } else {
          HolderWire.send(next.socket, "NONE");
        }
        lease = next;
        log.info("lease to pid {} ({})", next.pid, deviceFd >= 0 ? "with the held device" : "no device held yet");
      } catch (ErrnoException e) {
        log.debug("pid {} went away before its grant: {}", next.pid, e.getMessage());
      }
    }
  }

  /**
   * A held shim device is a socket: when the shim (or fanotify relay) at its other end is gone,
   * nothing can be restored on it, and the next daemon must connect to the new one instead.
   * (A kernel device never hangs up.) Holds {@code lock}.
   */
  private void dropDeviceIfDead() {
    if (deviceFd < 0) {
      return;
    }
    try {
      short[] rev = Posix.poll(new int[] {deviceFd}, new short[] {Posix.POLLRDHUP}, 0);
      if ((rev[0] & (Posix.POLLHUP | Posix.POLLRDHUP | Posix.POLLNVAL)) != 0) {
        log.warn("the held device's other end is gone (its shim or relay exited): dropping it; the next daemon"
            + " connects to a new one");
        Posix.closeQuietly(deviceFd);
        deviceFd = -1;
      }
    } catch (ErrnoException e) {
      log.warn("polling the held device: {}", e.getMessage());
    }
  }

  /** Waits until {@code pid} has exited (absent, or a zombie: its files are closed then). */
  static void waitForExit(int pid) {
    if (pid == ProcessHandle.current().pid()) {
      return; // an in-process client (tests): nothing to wait for
    }
    for (int i = 0; i < 6000; i++) { // at most 60 s
      if (!isRunning(pid)) {
        return;
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
    log.warn("pid {} still runs 60 s after closing its lease; handing the device over anyway", pid);
  }

  /** True if {@code pid} exists and is not a zombie (a zombie has closed all its fds). */
  public static boolean isRunning(int pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
      int close = stat.lastIndexOf(')');
      char state = stat.charAt(close + 2);
      return state != 'Z' && state != 'X';
    } catch (IOException e) {
      return false;
    }
  }
}
