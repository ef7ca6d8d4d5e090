package io.lazypull.daemon.failover;

import io.lazypull.protocol.HolderWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Fanotify;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the fanotify relay's group alive when the relay dies, so that a read of data not fetched
 * yet gets the right bytes, a wait or EIO, never zeros.
 *
 * <p>When the last fd of a fanotify group closes, the kernel allows every pending permission
 * event and removes every mark: a reader of a mounted image would read the holes of the sparse
 * cache files as zeros. So the relay gives the holder a copy of its group fd and, before it
 * marks a cache file, of that file's fd: it was opened before any mark, so writes through it
 * raise no pre-content events, and a successor relay hands it to the daemon as its predecessor
 * did. A relay that dies leaves:
 *
 * <ul>
 *   <li>events it had read but not answered: only a response written with the fd number it read
 *       them with ends them. Once its process is gone they are denied with EIO by number (every
 *       number below its fd limit): their ranges died with it;
 *   <li>events still queued, and those of later reads: they wait, unread, for a successor to
 *       take the group ({@code GROUP TAKE}) for up to the grace period; after it they are read
 *       and denied with EIO here until a successor comes.
 * </ul>
 *
 * Once no kept cache file is open anywhere else (no mount, also no lazily detached one, uses
 * one: {@link Posix#openElsewhere}), nothing can read a hole through a mark any more and the
 * group is closed.
 *
 * <pre>
 *   EMPTY --TAKE--> OWNED --PUT, FILE...--> OWNED --DROP--> EMPTY
 *                     | its connection closes: wait for its exit, deny its read events by number
 *                     v
 *                 ORPHANED --grace--> DRAINING (read and deny every event)
 *                     |  \________________|__ TAKE: group and files to the successor --> OWNED
 *                     \___________________|__ no kept file open elsewhere: close --> EMPTY
 * </pre>
 */
final class GroupKeeper {
  private static final Logger log = LoggerFactory.getLogger(GroupKeeper.class);
  private static final int DENY_EIO = Fanotify.denyErrno(Errno.EIO);
  private static final long CHECK_IN_USE_MILLIS = 1000;
  private static final long TAKE_WAIT_MILLIS = 60_000;

  enum State { EMPTY, OWNED, ORPHANED, DRAINING }

  private final long graceMillis;
  // guarded by this
  private State state = State.EMPTY;
  private Object owner;
  private int ownerPid;
  private boolean ownerGoing; // the owner's connection closed; its events are being denied
  private boolean ownerLeaving; // the owner said it stops on purpose: no successor is coming
  private int group = -1;
  private long nofile;
  private final Map<String, Integer> files = new LinkedHashMap<>();
  private Thread guard;
  private int wakeFd = -1;
  private long denied;

  GroupKeeper(long graceMillis) {
    this.graceMillis = graceMillis;
  }

  /** Serves one {@code GROUP ...} line of connection {@code conn} (process {@code pid}). */
  void handle(Object conn, int pid, UnixSocket socket, HolderWire.Line line) throws ErrnoException {
    String[] words = line.arg().split(" ", 2);
    String verb = words[0];
    String arg = words.length > 1 ? words[1] : "";
    switch (verb) {
      case "TAKE" -> take(conn, pid, socket, parseLimit(arg));
      case "PUT" -> {
        String err = put(conn, pid, arg, line.fds());
        HolderWire.send(socket, err == null ? "OK" : "ERR " + err);
      }
      case "FILE" -> {
        String err = keepFile(conn, arg, line.fds());
        HolderWire.send(socket, err == null ? "OK" : "ERR " + err);
      }
      case "LEAVE" -> {
        String err = leave(conn);
        HolderWire.send(socket, err == null ? "OK" : "ERR " + err);
      }
      case "DROP" -> {
        String err = drop(conn);
        HolderWire.send(socket, err == null ? "OK" : "ERR " + err);
      }
      default -> {
        line.closeFds();
        HolderWire.send(socket, "ERR unknown GROUP command " + verb);
      }
    }
  }

  private static long parseLimit(String arg) {
    try {
      return Long.parseLong(arg.strip());
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private void take(Object conn, int pid, UnixSocket socket, long takerLimit) throws ErrnoException {
    if (takerLimit <= 0) {
      HolderWire.send(socket, "ERR GROUP TAKE needs the relay's fd limit");
      return;
    }
    int groupCopy;
    long limit;
    Map<String, Integer> fileCopies;
    synchronized (this) {
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TAKE_WAIT_MILLIS);
      while (state == State.OWNED && ownerGoing && System.nanoTime() < deadline) {
        waitQuietly(deadline);
      }
      switch (state) {
        case EMPTY -> {
          state = State.OWNED;
          owner = conn;
          ownerPid = pid;
          log.info("fanotify relay pid {} makes a new group", pid);
          HolderWire.send(socket, "NONE");
          return;
        }
        case OWNED -> {
          HolderWire.send(socket, "BUSY " + ownerPid);
          return;
        }
        default -> {
          // Owned from here on (a second TAKE gets BUSY); the guard answers what it read first.
          state = State.OWNED;
          owner = conn;
          ownerPid = pid;
          stopGuardLocked();
          if (group < 0) {
            log.info("fanotify relay pid {} makes a new group (the old one was let go)", pid);
            HolderWire.send(socket, "NONE");
            return;
          }
          groupCopy = group;
          limit = nofile;
          nofile = Math.max(nofile, takerLimit); // the successor's event fds are below its own limit
          fileCopies = new LinkedHashMap<>(files);
        }
      }
    }
    // Sent outside the lock; the fds stay ours (SCM_RIGHTS sends copies).
    HolderWire.send(socket, "GROUP " + limit, groupCopy);
    for (Map.Entry<String, Integer> f : fileCopies.entrySet()) {
      HolderWire.send(socket, "FILE " + f.getKey(), f.getValue());
    }
    HolderWire.send(socket, "END");
    log.info("fanotify relay pid {} took over the group and {} cache files", pid, fileCopies.size());
  }

  private synchronized String put(Object conn, int pid, String arg, int[] fds) {
    if (owner != conn || state != State.OWNED) {
      closeAll(fds);
      return "only the relay that took the group (GROUP TAKE) may store it";
    }
    if (group >= 0) {
      closeAll(fds);
      return "a group is held already";
    }
    long limit = parseLimit(arg);
    if (fds.length != 1 || limit <= 0) {
      closeAll(fds);
      return "GROUP PUT needs the fd limit and exactly one fd";
    }
    group = fds[0];
    nofile = limit;
    log.info("holding the fanotify group of relay pid {} (fd limit {})", pid, limit);
    return null;
  }

  private synchronized String keepFile(Object conn, String name, int[] fds) {
    if (owner != conn || group < 0) {
      closeAll(fds);
      return "only the relay that stored the group may keep files";
    }
    if (fds.length != 1 || name.isBlank()) {
      closeAll(fds);
      return "GROUP FILE needs a name and exactly one fd";
    }
    Integer old = files.put(name.strip(), fds[0]);
    if (old != null) {
      Posix.closeQuietly(old);
    }
    return null;
  }

  /** The relay stops on purpose, with files still in use: no successor is coming, no grace. */
  private synchronized String leave(Object conn) {
    if (owner != conn) {
      return "only the relay that owns the group may leave it";
    }
    ownerLeaving = true;
    return null;
  }

  private synchronized String drop(Object conn) {
    if (owner != conn) {
      return "only the relay that owns the group may drop it";
    }
    log.info("relay pid {} dropped its fanotify group (no cache file in use)", ownerPid);
    releaseLocked();
    return null;
  }

  /** Connection {@code conn} closed: if it owned the group, the relay is gone or going. */
  void disconnected(Object conn) {
    int pid;
    int g;
    long limit;
    long grace;
    synchronized (this) {
      if (owner != conn) {
        return;
      }
      if (group < 0) {
        log.info("relay pid {} went away before storing a group", ownerPid);
        releaseLocked();
        return;
      }
      ownerGoing = true;
      pid = ownerPid;
      g = group;
      limit = nofile;
    }
    // Its fds (event fds, the group) close when its process ends; only then may anyone answer
    // by number, or a late response of the dying relay could end a successor's event.
    HolderServer.waitForExit(pid);
    int n = 0;
    try {
      n = Fanotify.answerEveryFdBelow(g, limit, DENY_EIO);
    } catch (ErrnoException e) {
      log.error("denying the events relay pid {} had read: {}", pid, e.getMessage());
    }
    synchronized (this) {
      if (group != g) {
        return; // let go meanwhile (the holder stops)
      }
      denied += n;
      grace = ownerLeaving ? 0 : graceMillis;
      ownerGoing = false;
      ownerLeaving = false;
      owner = null;
      state = State.ORPHANED;
      startGuardLocked(grace);
      notifyAll();
    }
    log.warn("fanotify relay pid {} is gone without dropping its group: {} event(s) it had read denied with EIO;"
        + " reads of data not cached wait up to {} s for a new relay, then get EIO", pid, n, grace / 1000);
  }

  /**
   * True while a group is held whose cache files something else still has open (a mount, also a
   * lazily detached one): if the holder exited now and the relay died (or is dying: a stack's
   * processes get SIGTERM together), their reads of holes would return zeros.
   */
  boolean mustOutlive() {
    List<Integer> kept;
    synchronized (this) {
      if (group < 0) {
        return false;
      }
      kept = List.copyOf(files.values());
    }
    return anyInUse(kept);
  }

  /** True while the group of a relay that is gone is kept (its events denied or waiting). */
  synchronized boolean guarding() {
    return state == State.ORPHANED || state == State.DRAINING;
  }

  synchronized String status() {
    return "group=" + state.name().toLowerCase() + (owner != null ? " relay=" + ownerPid : "") + " files=" + files.size()
        + " denied=" + denied;
  }

  /** Closes everything (the holder stops). */
  synchronized void close() {
    stopGuardLocked();
    releaseLocked();
  }

  // ---------------------------------------------------------------- the guard

  private void startGuardLocked(long graceMillis) {
    try {
      wakeFd = Posix.eventfd(0, Posix.EFD_NONBLOCK | Posix.EFD_CLOEXEC);
    } catch (ErrnoException e) {
      log.error("eventfd: {}; the group is kept, but its events are not denied", e.getMessage());
      return;
    }
    int g = group;
    int wake = wakeFd;
    List<Integer> kept = List.copyOf(files.values());
    guard = new Thread(() -> guard(g, wake, kept, graceMillis), "group-guard");
    guard.setDaemon(true);
    guard.start();
  }

  /**
   * Stops the guard and waits until it has answered what it read, so that no one else reads
   * the group meanwhile. Holds this lock, and lets go of it while waiting (the guard takes it).
   */
  private void stopGuardLocked() {
    Thread t = guard;
    if (t == null) {
      return;
    }
    guard = null;
    try {
      Posix.write(wakeFd, ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder()).putLong(0, 1));
    } catch (ErrnoException e) {
      log.debug("waking the guard: {}", e.getMessage());
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (t.isAlive() && System.nanoTime() < deadline) {
      waitQuietly(Math.min(deadline, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50)));
    }
    if (t.isAlive()) {
      log.error("the group guard did not stop within 30 s");
    }
    Posix.closeQuietly(wakeFd);
    wakeFd = -1;
  }

  private void guard(int g, int wake, List<Integer> kept, long graceMillis) {
    try {
      guardLoop(g, wake, kept, graceMillis);
    } finally {
      synchronized (this) {
        notifyAll(); // stopGuardLocked waits for this thread to end
      }
    }
  }

  private void guardLoop(int g, int wake, List<Integer> kept, long graceMillis) {
    long graceEnd = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(graceMillis);
    long nextCheck = 0;
    ByteBuffer buf = ByteBuffer.allocateDirect(64 * 1024).order(ByteOrder.nativeOrder());
    boolean draining = false;
    while (true) {
      long now = System.nanoTime();
      if (now >= nextCheck) {
        nextCheck = now + TimeUnit.MILLISECONDS.toNanos(CHECK_IN_USE_MILLIS);
        if (!anyInUse(kept)) {
          synchronized (this) {
            if (guard != Thread.currentThread()) {
              return; // a successor is taking over
            }
            log.info("no cache file of the dead relay is in use any more: closing its fanotify group");
            guard = null;
            Posix.closeQuietly(wakeFd);
            wakeFd = -1;
            releaseLocked();
          }
          return;
        }
      }
      if (!draining && now >= graceEnd) {
        draining = true;
        synchronized (this) {
          if (state == State.ORPHANED) {
            state = State.DRAINING;
          }
        }
        log.warn("no new relay within {} s: reads of data not cached get EIO until one takes the group", graceMillis / 1000);
      }
      int[] fds = draining ? new int[] {wake, g} : new int[] {wake};
      short[] events = draining ? new short[] {Posix.POLLIN, Posix.POLLIN} : new short[] {Posix.POLLIN};
      short[] rev;
      try {
        rev = Posix.poll(fds, events, (int) CHECK_IN_USE_MILLIS);
      } catch (ErrnoException e) {
        log.error("guard: poll: {}", e.getMessage());
        sleepQuietly(100);
        continue;
      }
      if (rev[0] != 0) {
        return; // stopGuardLocked: a successor takes the group, or the holder stops
      }
      if (draining && rev[1] != 0) {
        denyQueued(g, buf);
      }
    }
  }

  private void denyQueued(int g, ByteBuffer buf) {
    for (int batch = 0; batch < 64; batch++) {
      List<Fanotify.Event> events;
      try {
        events = Fanotify.read(g, buf);
      } catch (java.io.IOException e) {
        log.error("guard: reading events: {}", e.getMessage());
        return;
      }
      if (events.isEmpty()) {
        return;
      }
      for (Fanotify.Event e : events) {
        if (e.fd() < 0) {
          continue;
        }
        try {
          Fanotify.respond(g, e.fd(), DENY_EIO);
          synchronized (this) {
            denied++;
          }
        } catch (ErrnoException x) {
          log.debug("guard: answering {}: {}", e, x.getMessage());
        } finally {
          Posix.closeQuietly(e.fd());
        }
      }
    }
  }

  private static boolean anyInUse(List<Integer> kept) {
    for (int fd : kept) {
      try {
        if (Posix.openElsewhere(fd)) {
          return true;
        }
      } catch (ErrnoException e) {
        log.warn("guard: cannot tell whether fd {} is in use ({}): keeping the group", fd, e.getMessage());
        return true;
      }
    }
    return false;
  }

  private void releaseLocked() {
    Posix.closeQuietly(group);
    group = -1;
    for (int fd : files.values()) {
      Posix.closeQuietly(fd);
    }
    files.clear();
    owner = null;
    ownerGoing = false;
    ownerLeaving = false;
    state = State.EMPTY;
    notifyAll();
  }

  private static void closeAll(int[] fds) {
    for (int fd : fds) {
      Posix.closeQuietly(fd);
    }
  }

  private void waitQuietly(long deadlineNanos) {
    long millis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime()));
    try {
      wait(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void sleepQuietly(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
