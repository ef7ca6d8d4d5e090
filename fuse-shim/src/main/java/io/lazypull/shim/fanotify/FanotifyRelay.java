package io.lazypull.shim.fanotify;

import io.lazypull.shim.CacheBudget;
import io.lazypull.shim.Shim;
import io.lazypull.shim.ShimFiles;
import io.lazypull.shim.ondemand.CacheObject;
import io.lazypull.shim.ondemand.CacheStore;
import io.lazypull.shim.ondemand.StoreFile;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Fanotify;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * The fanotify front end: the fuse-shim's cachefiles emulation (Shim: OndemandCache,
 * CacheStore, DeviceServer, unchanged) with pre-content events as the source of READ requests
 * instead of FUSE reads. The daemon connects to the device socket exactly as to the FUSE shim.
 *
 *   lazypull mount --frontend fanotify               kernel EROFS, file-backed on the cache files
 *     | control socket: OPEN meta WHOLE, OPEN blob     | reads of holes of a data blob
 *     v                                                v
 *   control threads --- ShimFiles.open/fetch     event loop: read events (statx: which blob)
 *                                |                  cached range -> FAN_ALLOW at once
 *                                v                  else a fetch thread: ShimFiles.fetch (READs,
 *                         OndemandCache <--- device socket --- daemon  wait) -> ALLOW | DENY(EIO)
 *
 * Data blobs are marked FAN_PRE_ACCESS (inode marks, through the relay's own fd) before the
 * mount opens them: the kernel decides at open(2) whether a file may raise pre-content events
 * at all (FMODE_NONOTIFY_HSM), so a file EROFS opened before the mark never raises any and its
 * holes read as zeros. For the same reason the cache files' fds the daemon writes through
 * (opened by CacheStore when the OPEN was delivered, before the mark) raise no events: the
 * daemon's pwrites never wait for the relay. A blob found complete is unmarked: no more events.
 *
 * The relay must not go away while images are mounted: a group that is released lets every
 * pending and later access through, and holes read as zeros (measured, docs/fanotify.md).
 * ShimCommand refuses to stop while EROFS mounts of this cache dir exist, and the event loop
 * never gives up on an error.
 */

/** The fanotify relay: pre-content events on the shim's cache files, served by the same daemon. */
public final class FanotifyRelay implements Closeable {
  private static final Logger log = LoggerFactory.getLogger(FanotifyRelay.class);
  private static final int GROUP_FLAGS = Fanotify.FAN_CLOEXEC | Fanotify.FAN_NONBLOCK | Fanotify.FAN_CLASS_PRE_CONTENT
      | Fanotify.FAN_UNLIMITED_QUEUE | Fanotify.FAN_UNLIMITED_MARKS;
  private static final int EVENT_FLAGS = Posix.O_RDONLY | Posix.O_CLOEXEC | 0100000 /* O_LARGEFILE */;
  private static final long LOG_EVERY_MILLIS = 30_000;
  private static final int READ_BUFFER = 64 * 1024;
  /** How long an event waits for a daemon to connect when none is (after a relay or daemon restart). */
  static final long DEVICE_WAIT_MILLIS = 30_000;

  /** A cache file the relay opened for a mount (and may have marked). */
  static final class Blob {
    final String volumeKey;
    final String cookieKey;
    final Posix.FileId id;
    final int fd;
    final Path path;
    volatile CacheObject object;
    /** Guarded by this: marked FAN_PRE_ACCESS in the group (or maybe, for a predecessor's). */
    boolean marked;
    /** Guarded by this: the holder has a copy of {@link #fd} (opened before any mark). */
    boolean kept;
    /** Guarded by this: when the current mark was added (millis); eviction waits a guard after it. */
    long markedAt;
    /**
     * Guarded by this: a mount may have opened the file while it was not marked (a complete blob,
     * a meta blob, a predecessor's file): its reads raise no events at all, so no range of it may
     * be punched while it is open elsewhere.
     */
    boolean openedUnmarked;

    Blob(String volumeKey, String cookieKey, StoreFile file, Posix.FileId id) {
      this.volumeKey = volumeKey;
      this.cookieKey = cookieKey;
      this.id = id;
      this.fd = file.fd();
      this.path = file.path();
    }

    @Override
    public String toString() {
      return ShimFiles.fuseName(volumeKey) + "/" + ShimFiles.fuseName(cookieKey);
    }
  }

  /** One control connection: the handles of the objects one mount uses. */
  private static final class Session {
    final List<ShimFiles.Handle> handles = new ArrayList<>();
    Path metaPath;
    boolean mounted;
  }

  /** An image mounted through the relay: its objects are released once it is unmounted. */
  private record MountedImage(String target, String source, List<ShimFiles.Handle> handles, boolean[] seen,
      boolean[] warned) {}

  private final Shim shim;
  private final ShimFiles files;
  private final OndemandCache cache;
  private final GroupLease lease;
  private final int group;
  private final int stopFd;
  private final int mountinfoFd;
  private final Thread loop;
  private final ExecutorService fetchers;
  private final ScheduledExecutorService ticker;
  private final ControlServer control;
  private final Map<Posix.FileId, Blob> blobsById = new ConcurrentHashMap<>();
  private final Map<List<String>, Blob> blobsByKey = new ConcurrentHashMap<>();
  private final List<MountedImage> mounts = new ArrayList<>();
  private final AtomicInteger inFlight = new AtomicInteger();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final RelayStats stats = new RelayStats();
  private final CacheBudget budget;
  private final long guardMillis;
  private volatile boolean stopping;

  private FanotifyRelay(Shim shim, GroupLease lease, int group, int stopFd, int mountinfoFd) throws IOException {
    this.shim = shim;
    this.files = shim.files();
    this.cache = shim.cache();
    this.lease = lease;
    this.group = group;
    this.stopFd = stopFd;
    this.mountinfoFd = mountinfoFd;
    AtomicInteger n = new AtomicInteger();
    this.fetchers = Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "fanotify-fetch-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    this.loop = new Thread(this::run, "fanotify-events");
    this.loop.setDaemon(true);
    this.ticker = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "relay-stats");
      t.setDaemon(true);
      return t;
    });
    this.budget = shim.budget();
    this.guardMillis = budget.config().guard().toMillis();
    this.control = ControlServer.start(RelayClient.socketPath(shim.cacheDir()), new ControlHandler());
  }

  /**
   * Starts a relay: the shim core on {@code cacheDir} and {@code socket} (the device socket the
   * daemon connects to), the control socket {@code <cacheDir>/.relay.sock}, and the fanotify
   * group: the one a previous relay left with the holder at {@code holder} (its marks, its
   * queued events and the fds of its marked cache files are taken over), else a new one, a copy
   * of which the holder keeps from now on. Without the holder the relay's death would let reads
   * of holes return zeros, so there is no relay without one.
   */
  public static FanotifyRelay start(Path cacheDir, Path socket, Path holder) throws IOException {
    return start(cacheDir, socket, holder, io.lazypull.shim.ondemand.OndemandCache.DEFAULT_MAX_WAIT);
  }

  /** As {@link #start(Path, Path, Path)}; an event waits at most {@code maxWait} for the daemon's answer. */
  public static FanotifyRelay start(Path cacheDir, Path socket, Path holder, java.time.Duration maxWait)
      throws IOException {
    return start(cacheDir, socket, holder, maxWait, CacheBudget.Config.unbounded());
  }

  /**
   * As {@link #start(Path, Path, Path, java.time.Duration)}, the cache bounded by {@code budget}
   * (its guard: how long after an event's answer its range may not be evicted).
   */
  public static FanotifyRelay start(Path cacheDir, Path socket, Path holder, java.time.Duration maxWait,
      CacheBudget.Config budget) throws IOException {
    Shim shim = Shim.start(cacheDir, socket, maxWait, budget); // raises RLIMIT_NOFILE: read the limit after it
    GroupLease lease = null;
    GroupLease.Adopted adopted = null;
    int group = -1;
    int stopFd = -1;
    int mountinfo = -1;
    try {
      lease = GroupLease.connect(holder);
      long nofile = Posix.noFileLimit();
      adopted = lease.take(nofile);
      if (adopted != null) {
        group = adopted.group();
        for (Map.Entry<String, Integer> f : adopted.files().entrySet()) {
          if (!shim.store().adopt(f.getKey(), f.getValue())) {
            log.error("the holder kept a cache file named '{}', which is not one of {}: ignored", f.getKey(),
                shim.cacheDir());
            Posix.closeQuietly(f.getValue());
          }
        }
      } else {
        group = Fanotify.init(GROUP_FLAGS, EVENT_FLAGS);
        lease.put(group, nofile);
      }
      stopFd = Posix.eventfd(0, Posix.EFD_NONBLOCK);
      mountinfo = Posix.open("/proc/self/mountinfo", Posix.O_RDONLY, 0);
      FanotifyRelay r = new FanotifyRelay(shim, lease, group, stopFd, mountinfo);
      if (adopted != null) {
        r.registerAdopted(adopted.files().keySet());
      }
      r.startThreads();
      shim.budget().puncher(r.new RelayPuncher());
      shim.startEviction(); // after the adoption: a pass may open cache files
      return r;
    } catch (IOException | RuntimeException e) {
      Posix.closeQuietly(mountinfo);
      Posix.closeQuietly(stopFd);
      Posix.closeQuietly(group);
      if (lease != null) {
        lease.close(); // the holder keeps (and guards) what it had
      }
      shim.close();
      throw e;
    }
  }

  /**
   * The cache files a predecessor marked: their events identify them by inode, so they are
   * known before any event is read. Their objects are looked up (OPEN) on their first event.
   */
  private void registerAdopted(java.util.Set<String> names) {
    int n = 0;
    for (String name : names) {
      int slash = name.indexOf('/');
      String volumeKey = slash < 0 ? null : CacheStore.unescape(name.substring(0, slash));
      String cookieKey = slash < 0 ? null : CacheStore.unescape(name.substring(slash + 1));
      if (volumeKey == null || cookieKey == null) {
        log.error("cannot tell the keys of kept cache file {}: its readers will get EIO", name);
        continue;
      }
      try {
        StoreFile f = shim.store().file(volumeKey, cookieKey);
        Blob b = new Blob(volumeKey, cookieKey, f, Posix.fileId(f.fd()));
        synchronized (b) {
          b.marked = true; // maybe: unmarking an unmarked file is harmless
          b.kept = true;
          b.markedAt = System.currentTimeMillis();
          b.openedUnmarked = true; // the predecessor's mounts: unknown
        }
        blobsById.put(b.id, b);
        blobsByKey.put(List.of(volumeKey, cookieKey), b);
        n++;
      } catch (ErrnoException e) {
        log.error("kept cache file {}: {}", name, e.getMessage());
      }
    }
    log.info("took over the fanotify group of a previous relay: {} marked cache files", n);
  }

  private void startThreads() {
    long[] last = {-1};
    ticker.scheduleAtFixedRate(() -> {
      long events = stats.events();
      if (events != last[0]) {
        last[0] = events;
        log.info("stats: {}", stats);
      }
    }, 60, 60, TimeUnit.SECONDS);
    loop.start();
    log.info("fanotify relay on {}: group fd {}, device socket {}", shim.cacheDir(), group, shim.socket());
  }

  public Shim shim() {
    return shim;
  }

  public RelayStats stats() {
    return stats;
  }

  /** The images mounted through this relay: (mount point, meta blob's cache file). */
  public List<Map.Entry<String, String>> mountedImages() {
    List<Map.Entry<String, String>> out = new ArrayList<>();
    synchronized (mounts) {
      for (MountedImage m : mounts) {
        out.add(Map.entry(m.target(), m.source()));
      }
    }
    return out;
  }

  /**
   * The EROFS mounts (mount points) whose primary device is one of this relay's cache files:
   * while any exists, the relay must keep serving (a released group lets their reads of holes
   * through as zeros).
   */
  public List<String> activeMounts() {
    String prefix = shim.cacheDir().toString() + "/";
    List<String> out = new ArrayList<>();
    try {
      for (Mounts.MountInfo mi : Mounts.mountInfos()) {
        if (mi.fsType().equals("erofs") && mi.source().startsWith(prefix)) {
          out.add(mi.mountPoint());
        }
      }
    } catch (IOException e) {
      log.warn("reading mountinfo: {}", e.getMessage());
    }
    return out;
  }

  // ---------------------------------------------------------------- control requests

  private final class ControlHandler implements ControlServer.Handler {
    @Override
    public Object sessionStarted() {
      return new Session();
    }

    @Override
    public RelayWire.Reply open(Object s, RelayWire.Open req) {
      Session session = (Session) s;
      if (stopping) {
        return RelayWire.Reply.error(req.tag(), -Errno.EIO);
      }
      ShimFiles.Handle h;
      try {
        h = files.open(req.domain(), req.blob());
      } catch (ErrnoException e) {
        log.info("control OPEN {}/{}: {}", req.domain(), req.blob(), Errno.describe(e.errno()));
        return RelayWire.Reply.error(req.tag(), -e.errno());
      }
      synchronized (session) {
        session.handles.add(h);
      }
      CacheObject o = h.object();
      try {
        Blob b = register(req.domain(), req.blob(), o);
        if (req.whole()) {
          synchronized (b) {
            b.openedUnmarked = true; // the mount reads it through the page cache: never an event
          }
          int r;
          budget.pin(b.path, 0, o.size());
          try {
            r = files.fetch(o, 0, o.size());
            if (r >= 0 && !ShimFiles.isCached(o, 0, o.size())) {
              r = -Errno.EIO;
            }
          } finally {
            budget.unpin(b.path, 0, o.size());
          }
          if (r < 0) {
            return RelayWire.Reply.error(req.tag(), r);
          }
          synchronized (session) {
            session.metaPath = b.path;
          }
          log.info("control OPEN {} whole: {} bytes in {}", b, o.size(), b.path);
          return new RelayWire.Reply(req.tag(), 0, o.size(), true, b.path.toString());
        }
        boolean complete = markUnlessComplete(b);
        return new RelayWire.Reply(req.tag(), 0, o.size(), complete, b.path.toString());
      } catch (ErrnoException e) {
        log.warn("control OPEN {}/{}: {}", req.domain(), req.blob(), e.getMessage());
        return RelayWire.Reply.error(req.tag(), -e.errno());
      }
    }

    @Override
    public RelayWire.Reply mounted(Object s, RelayWire.Mounted req) {
      Session session = (Session) s;
      MountedImage m;
      synchronized (session) {
        if (session.metaPath == null || session.mounted) {
          return RelayWire.Reply.error(req.tag(), -Errno.EINVAL);
        }
        session.mounted = true;
        m = new MountedImage(req.target(), session.metaPath.toString(), new ArrayList<>(session.handles), new boolean[1],
            new boolean[1]);
        session.handles.clear();
      }
      synchronized (mounts) {
        mounts.add(m);
      }
      log.info("image {} mounted on {}: {} blobs in use until it is unmounted", m.source(), m.target(), m.handles().size());
      checkMounts();
      return RelayWire.Reply.error(req.tag(), 0);
    }

    @Override
    public void sessionEnded(Object s) {
      Session session = (Session) s;
      List<ShimFiles.Handle> left;
      synchronized (session) {
        left = new ArrayList<>(session.handles);
        session.handles.clear();
      }
      for (ShimFiles.Handle h : left) {
        files.release(h);
      }
    }
  }

  /** The blob of {@code o}, registered by its file's identity; its object updated. */
  private Blob register(String domain, String name, CacheObject o) throws ErrnoException {
    List<String> key = List.of(o.volumeKey(), o.cookieKey());
    Blob b = blobsByKey.get(key);
    if (b == null) {
      synchronized (blobsByKey) {
        b = blobsByKey.get(key);
        if (b == null) {
          b = new Blob(o.volumeKey(), o.cookieKey(), o.file(), Posix.fileId(o.file().fd()));
          blobsById.put(b.id, b);
          blobsByKey.put(key, b);
        }
      }
    }
    b.object = o;
    return b;
  }

  /**
   * Marks {@code b} FAN_PRE_ACCESS unless it is complete already (then it never needs events).
   * Returns true if complete. The mark is in place when this returns, before the mount opens
   * the file.
   */
  private boolean markUnlessComplete(Blob b) throws ErrnoException {
    synchronized (b) {
      if (b.marked) {
        return false;
      }
      CacheObject o = b.object;
      if (ShimFiles.isCached(o, 0, o.size())) {
        b.openedUnmarked = true; // the mount opens it unmarked: it can never raise events
        return true;
      }
      mark(b); // a failure: not marked, so not mountable
      log.info("marked {} ({}, {} bytes) for pre-content events", b, b.path, o.size());
      return false;
    }
  }

  /** Marks {@code b} FAN_PRE_ACCESS, the holder keeping its fd first. Called holding b's lock. */
  private void mark(Blob b) throws ErrnoException {
    if (!b.kept) {
      String name = shim.cacheDir().relativize(b.path).toString();
      try {
        lease.keepFile(name, b.fd);
      } catch (IOException e) {
        throw new ErrnoException("mark", Errno.EIO, b + ": the holder that keeps the fanotify group across relay"
            + " restarts did not take the file (" + e.getMessage() + "); not marked");
      }
      b.kept = true;
    }
    Fanotify.markFd(group, Fanotify.FAN_MARK_ADD, Fanotify.FAN_PRE_ACCESS, b.fd);
    b.marked = true;
    b.markedAt = System.currentTimeMillis();
    stats.marks.increment();
  }

  /**
   * Eviction's rules on this front end (see CacheBudget): a range of a cache file becomes a hole
   * only while the file is marked, so that a read of it raises an event and waits for the data
   * again: a complete blob (unmarked) is marked first, and punched only {@code guard} later (a
   * read that passed the unmarked file before the mark has finished by then); never while a
   * mount that opened the file unmarked has it open. Ranges allowed within the guard are not
   * chosen (the budget's ages), and ranges an event is being answered for are pinned.
   */
  private final class RelayPuncher implements CacheBudget.Puncher {
    @Override
    public boolean punch(StoreFile f, long offset, long length) throws ErrnoException {
      Blob b = null;
      for (Blob x : blobsById.values()) {
        if (x.path.equals(f.path())) {
          b = x;
          break;
        }
      }
      if (b == null) {
        // No mount of this relay's life has it; a file open elsewhere may be an older mount's.
        if (Posix.openElsewhere(f.fd())) {
          return false;
        }
        Posix.punchHole(f.fd(), offset, length);
        return true;
      }
      synchronized (b) {
        long now = System.currentTimeMillis();
        if (!b.marked) {
          mark(b);
          log.info("marked {} again before evicting ranges of it", b);
        }
        if (b.openedUnmarked) {
          if (Posix.openElsewhere(b.fd)) {
            return false;
          }
          b.openedUnmarked = false; // opened from now on, it is opened marked
          b.markedAt = now;
        }
        if (now - b.markedAt < guardMillis) {
          return false;
        }
        Posix.punchHole(b.fd, offset, length);
        return true;
      }
    }

    @Override
    public boolean mayRemoveFiles() {
      return false; // the holder keeps marked files' fds by name: a new file under that name would not be them
    }
  }

  /** Removes the mark of a blob that has become complete: its reads raise no events any more. */
  private void unmarkIfComplete(Blob b, CacheObject o) {
    synchronized (b) {
      if (!b.marked) {
        return;
      }
      try {
        if (!ShimFiles.isCached(o, 0, o.size())) {
          return;
        }
        Fanotify.markFd(group, Fanotify.FAN_MARK_REMOVE, Fanotify.FAN_PRE_ACCESS, b.fd);
        b.marked = false;
        stats.unmarks.increment();
        log.info("{} is complete: mark removed, its reads raise no more events", b);
      } catch (ErrnoException e) {
        log.warn("unmarking {}: {}", b, e.getMessage());
      }
    }
  }

  // ---------------------------------------------------------------- mounts

  /** Releases the objects of images that are no longer mounted (their last user queues CLOSE). */
  private void checkMounts() {
    List<MountedImage> gone = new ArrayList<>();
    synchronized (mounts) {
      if (mounts.isEmpty()) {
        return;
      }
      List<Mounts.MountInfo> infos;
      try {
        infos = Mounts.mountInfos();
      } catch (IOException e) {
        log.warn("reading mountinfo: {}", e.getMessage());
        return;
      }
      for (MountedImage m : mounts) {
        boolean present = infos.stream().anyMatch(mi -> mi.mountPoint().equals(m.target())
            && mi.fsType().equals("erofs") && mi.source().equals(m.source()));
        if (present) {
          m.seen()[0] = true;
        } else if (m.seen()[0]) {
          gone.add(m);
        } else if (!m.warned()[0]) {
          // MOUNTED comes after mount(2): not seeing it means another mount namespace.
          m.warned()[0] = true;
          log.warn("{} is not an EROFS mount of {} in the relay's mount namespace: its blobs stay open",
              m.target(), m.source());
        }
      }
      mounts.removeAll(gone);
    }
    for (MountedImage m : gone) {
      log.info("{} unmounted: releasing its {} blobs", m.target(), m.handles().size());
      for (ShimFiles.Handle h : m.handles()) {
        files.release(h);
      }
    }
  }

  // ---------------------------------------------------------------- events

  private void run() {
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_BUFFER).order(ByteOrder.nativeOrder());
    int[] fds = {group, stopFd, mountinfoFd};
    short[] events = {Posix.POLLIN, Posix.POLLIN, (short) (Posix.POLLERR | 0x2 /* POLLPRI */)};
    while (!stopping) {
      try {
        short[] rev = Posix.poll(fds, events, 10_000);
        if (stopping) {
          return;
        }
        if (rev[2] != 0 || (rev[0] == 0 && rev[1] == 0)) {
          checkMounts();
        }
        if (rev[0] != 0) {
          readEvents(buf);
        }
      } catch (Throwable t) {
        // Never stop answering: a relay that stopped reading events hangs its readers, and one
        // that exited would let them read zeros.
        log.error("event loop: unexpected error (continuing)", t);
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
    }
  }

  private void readEvents(ByteBuffer buf) {
    for (int batch = 0; batch < 64 && !stopping; batch++) {
      List<Fanotify.Event> events;
      try {
        events = Fanotify.read(group, buf);
      } catch (IOException e) {
        // A parse error: nothing can be answered without the fds; their readers wait until killed.
        log.error("reading fanotify events: {}", e.getMessage());
        return;
      }
      if (events.isEmpty()) {
        return;
      }
      for (Fanotify.Event e : events) {
        stats.events.increment();
        handle(e, fileOf(e));
      }
    }
  }

  /** The identity of the event's file (statx of the event's fd: never its path). */
  private static Posix.FileId fileOf(Fanotify.Event e) {
    if (e.fd() < 0) {
      return null;
    }
    try {
      return Posix.fileId(e.fd());
    } catch (ErrnoException x) {
      log.warn("{}: {}", e, x.getMessage());
      return null;
    }
  }

  private void handle(Fanotify.Event e, Posix.FileId id) {
    if (e.fd() < 0) {
      log.error("fanotify {}: the queue overflowed (the kernel let those accesses through)", e);
      return;
    }
    if ((e.mask() & Fanotify.FAN_PRE_ACCESS) == 0) {
      answer(e.fd(), Fanotify.FAN_ALLOW, "not a pre-content event: " + e);
      return;
    }
    long offset = e.hasRange() ? e.offset() : 0;
    long count = e.hasRange() ? e.count() : Long.MAX_VALUE / 2;
    Blob b = id == null ? null : blobsById.get(id);
    if (b == null) {
      denyUnknown(e);
      return;
    }
    CacheObject o = b.object;
    if (o != null && !o.isDead()) {
      long len = Math.max(0, Math.min(count, o.size() - offset));
      budget.pin(b.path, offset, len); // no eviction between the check and the answer; aged from the answer on
      try {
        if (ShimFiles.isCached(o, offset, count)) {
          stats.cached.increment();
          answer(e.fd(), Fanotify.FAN_ALLOW, null);
          if (b.marked) {
            unmarkIfComplete(b, o); // the daemon's prefetch may have filled the rest meanwhile
          }
          return;
        }
      } catch (ErrnoException x) {
        log.warn("{} of {}: {}", e, b, x.getMessage());
      } finally {
        budget.unpin(b.path, offset, len);
      }
    }
    Blob blob = b;
    dispatch(() -> fetchAndAnswer(e.fd(), blob, offset, count));
  }

  private void dispatch(Runnable task) {
    inFlight.incrementAndGet();
    fetchers.execute(() -> {
      try {
        task.run();
      } finally {
        inFlight.decrementAndGet();
      }
    });
  }

  /**
   * An event on a file the relay does not know. Only its own marks raise events, and it learns of
   * a file before marking it (or from the holder, for a predecessor's marks), so this is a bug:
   * EIO, because letting the read through could return the zeros of a hole.
   */
  private void denyUnknown(Fanotify.Event e) {
    stats.unknown.increment();
    log.error("{} on a file that is not one of this relay's cache files: the reader gets EIO", e);
    answer(e.fd(), Fanotify.denyErrno(Errno.EIO), null);
  }

  /** The slow path: READ requests for the holes, wait for the daemon, then answer. */
  private void fetchAndAnswer(int eventFd, Blob b, long offset, long count) {
    CacheObject o = objectFor(b);
    long len = o == null ? 0 : Math.max(0, Math.min(count, o.size() - offset));
    int r;
    if (o == null) {
      r = -Errno.EIO;
    } else {
      budget.pin(b.path, offset, len); // from the fetch's last check to the answer
      try {
        r = files.fetch(o, offset, count);
        if (r >= 0) {
          stats.fetched.increment();
          answer(eventFd, Fanotify.FAN_ALLOW, null);
        }
      } finally {
        budget.unpin(b.path, offset, len);
      }
    }
    if (r >= 0) {
      unmarkIfComplete(b, o);
    } else {
      stats.denied.increment();
      log.warn("{} [{}, {}): {}: the reader gets EIO", b, offset, offset + Math.min(count, o == null ? count : o.size()),
          Errno.describe(-r));
      answer(eventFd, Fanotify.denyErrno(Errno.EIO), null);
    }
  }

  /**
   * The blob's object in the current device generation: when the device died and a new daemon
   * bound one, the blob is looked up again (OPEN) rather than failing for good, as the kernel
   * would until a remount. While no device is bound (a relay that took over from a dead one
   * starts before its daemon) it waits up to {@link #DEVICE_WAIT_MILLIS} for one; null (EIO)
   * after that.
   */
  private CacheObject objectFor(Blob b) {
    CacheObject o = b.object;
    if (o != null && !o.isDead()) {
      return o;
    }
    try {
      if (!cache.awaitBound(DEVICE_WAIT_MILLIS)) {
        log.warn("{}: no daemon connected within {} s", b, DEVICE_WAIT_MILLIS / 1000);
        return null;
      }
      o = cache.lookup(b.volumeKey, b.cookieKey, LOG_EVERY_MILLIS);
      b.object = o;
      return o;
    } catch (ErrnoException e) {
      log.debug("{}: lookup in the current device generation: {}", b, e.getMessage());
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  private void answer(int eventFd, int response, String why) {
    if (why != null) {
      log.debug("event fd {}: {}", eventFd, why);
    }
    try {
      Fanotify.respond(group, eventFd, response);
    } catch (ErrnoException e) {
      // ENOENT: the reader was killed meanwhile and its event is gone.
      log.debug("response to event fd {}: {}", eventFd, e.getMessage());
    } finally {
      Posix.closeQuietly(eventFd);
    }
  }

  // ---------------------------------------------------------------- stopping

  /**
   * Stops. Events being fetched are denied with EIO (never allowed, which would read holes as
   * zeros), and so are queued ones; then the group fd closes and the shim core stops. If a mount
   * still has files of it open, the holder keeps the group and denies their later reads of data
   * not cached with EIO at once.
   */
  @Override
  public void close() {
    close(false);
  }

  /**
   * Stops for a new relay to take over (an upgrade): as {@link #close()}, but queued events are
   * left queued, and the holder keeps later reads of data not cached waiting (up to its grace
   * period) for the successor.
   */
  public void closeForSuccessor() {
    close(true);
  }

  private void close(boolean successorComing) {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    stopping = true;
    signalStop();
    join(loop, 5000);
    control.close();
    if (!successorComing) {
      denyQueued();
    }
    shim.failWaiters(); // fetch threads wake with EIO and deny their events
    fetchers.shutdown();
    try {
      fetchers.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    ticker.shutdownNow();
    List<Blob> inUse = markedBlobsInUse();
    if (inUse.isEmpty()) {
      try {
        lease.drop();
      } catch (IOException e) {
        log.warn("dropping the group at {}: {}", lease, e.getMessage());
      }
    } else {
      log.warn("{} marked cache file(s) are still open elsewhere (e.g. {}: a lazily detached mount?): {} keeps the"
          + " fanotify group; their reads of data not cached get EIO, never zeros", inUse.size(), inUse.get(0), lease);
      try {
        if (!successorComing) {
          lease.leave();
        }
      } catch (IOException e) {
        log.warn("leaving the group to {}: {}", lease, e.getMessage());
      }
    }
    lease.close();
    Posix.closeQuietly(group);
    Posix.closeQuietly(stopFd);
    Posix.closeQuietly(mountinfoFd);
    shim.close();
    log.info("relay stopped; stats: {}", stats);
  }

  /**
   * The cache files that are (or may be) marked and that something else has open: a mount, also
   * a lazily detached one that no mount table lists. While any exists the group must live on.
   */
  public List<Blob> markedBlobsInUse() {
    List<Blob> out = new ArrayList<>();
    for (Blob b : blobsByKey.values()) {
      synchronized (b) {
        if (!b.kept) {
          continue; // never marked
        }
      }
      try {
        if (Posix.openElsewhere(b.fd)) {
          out.add(b);
        }
      } catch (ErrnoException e) {
        log.warn("cannot tell whether {} is in use: {}", b, e.getMessage());
        out.add(b);
      }
    }
    return out;
  }

  private void denyQueued() {
    ByteBuffer buf = ByteBuffer.allocateDirect(READ_BUFFER).order(ByteOrder.nativeOrder());
    while (true) {
      List<Fanotify.Event> events;
      try {
        events = Fanotify.read(group, buf);
      } catch (IOException e) {
        log.error("stopping: {}", e.getMessage());
        return;
      }
      if (events.isEmpty()) {
        return;
      }
      for (Fanotify.Event e : events) {
        if (e.fd() >= 0) {
          stats.denied.increment();
          answer(e.fd(), Fanotify.denyErrno(Errno.EIO), "relay stopping");
        }
      }
    }
  }

  private void signalStop() {
    try {
      Posix.write(stopFd, ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder()).putLong(0, 1));
    } catch (ErrnoException e) {
      // already signalled
    }
  }

  private static void join(Thread t, long millis) {
    if (t == Thread.currentThread()) {
      return;
    }
    try {
      t.join(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
