package io.lazypull.shim;

import io.lazypull.shim.ondemand.CacheStore;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.shim.ondemand.StoreFile;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * How the cache stays under its bound (shim and fanotify relay; the kernel's cachefiles culls
 * its own cache).
 *
 * Accounting is what SEEK_DATA finds in the cache files, measured, never counted from events: a
 * crashed shim, relay or daemon cannot leave it wrong, and a restart measures it again. It is
 * kept per window (1 MiB by default) and re-measured for a file after each of its READs settles
 * (the daemon writes into the files directly; the shim never sees the write itself).
 *
 *   reader (FUSE read, fanotify event)        evictor (reserve, the periodic pass, gc)
 *   pin(windows), touch                       victims: windows with data, no pin, oldest use
 *   fetch: reserve(holes) -> READs -> settle  first, not used within `guard`
 *   pread / FAN_ALLOW                         puncher.punch(file, window): PUNCH_HOLE
 *   unpin                                     (the relay marks the file first, see below)
 *
 * Before a READ is sent, reserve() evicts until used + reserved + the READ's windows fit; the
 * reservation stays until the READ settles, so concurrent READs cannot overshoot together. A
 * fetch that nobody waits for (a timed-out READ's, a prefetch, the windows the daemon fetches
 * ahead of a sequential reader, up to twice its --fetch-size) is reserved by no READ: it lands
 * above the bound, and the next READ to settle, or the next pass (every second), evicts down
 * to it. The bound is exact when the daemon's largest fetch is one window. (Reserving the
 * windows ahead too would hold room for data that may never come, for every READ of a
 * stream.) When nothing can be evicted (everything pinned or too recent) reserve waits up to
 * `maxThrottle`, then goes over the bound (logged, counted) rather than failing a read.
 *
 * What a punched range may never be: a range a reader is between its check and its use of
 * (pins: FUSE reads from fetch to pread, fanotify events from the cache check to the answer);
 * for the fanotify front end also a range allowed less than `guard` ago (the kernel reads it
 * after FAN_ALLOW, with no lock we could hold), a file not marked (its reads raise no events,
 * so a hole would read as zeros): the relay's Puncher marks first and punches only `guard`
 * after marking, and never a file a mount opened while unmarked. Those rules live in the
 * Puncher the relay installs; this class keeps pins, ages and accounting.
 *
 * Blobs no mount uses are punched whole after `unusedGrace` (and their files removed where the
 * front end allows); `gc` does it at once.
 */

/** The cache's bound: accounting, LRU eviction of windows, removal of blobs not in use. */
public final class CacheBudget {
  private static final Logger log = LoggerFactory.getLogger(CacheBudget.class);
  private static final long PAGE = 4096;

  /**
   * What eviction does with a window (or a whole blob): punch it, or refuse (false) because a
   * front end rule says it may not be punched now.
   */
  public interface Puncher {
    boolean punch(StoreFile file, long offset, long length) throws ErrnoException;

    /** True if the file may be removed once its blob is not in use (the FUSE shim); false keeps it. */
    default boolean mayRemoveFiles() {
      return true;
    }
  }

  /** The plain puncher of the FUSE shim: its reads all go through pins. */
  public static final Puncher PUNCH = (file, offset, length) -> {
    Posix.punchHole(file.fd(), offset, length);
    return true;
  };

  /**
   * @param limitBytes the bound; 0: none (accounting only)
   * @param window eviction granularity: the daemon's fetch size
   * @param guard a window used less than this ago is not evicted (fanotify: reads allowed just
   *     before may still be reading it)
   * @param unusedGrace a blob no mount uses is removed after this long
   * @param maxThrottle how long a READ may wait for room before the cache goes over its bound
   */
  public record Config(long limitBytes, long window, Duration guard, Duration unusedGrace, Duration maxThrottle) {
    public Config {
      if (limitBytes < 0 || window < PAGE || window % PAGE != 0) {
        throw new IllegalArgumentException("cache limit " + limitBytes + " / window " + window
            + ": the window must be a multiple of 4096");
      }
    }

    public static Config unbounded() {
      return new Config(0, 1 << 20, Duration.ZERO, Duration.ofMinutes(10), Duration.ofSeconds(5));
    }
  }

  /** One cache file's accounting. Guarded by the budget. */
  private static final class Entry {
    final String volumeKey;
    final String cookieKey;
    final Path path;
    long[] bytes = new long[0]; // data bytes per window
    long[] lastUse = new long[0]; // millis since the epoch
    int[] pins = new int[0];
    final BitSet evicted = new BitSet(); // windows punched since the last time they had data
    long used;
    boolean dirty = true;
    int recentlySettled; // passes that still measure it again after its last READ settled
    long idleSince = -1; // millis; -1 while in use

    Entry(String volumeKey, String cookieKey, Path path) {
      this.volumeKey = volumeKey;
      this.cookieKey = cookieKey;
      this.path = path;
    }

    void size(int windows, long initialUse) {
      if (bytes.length != windows) {
        bytes = java.util.Arrays.copyOf(bytes, windows);
        pins = java.util.Arrays.copyOf(pins, windows);
        int old = lastUse.length;
        lastUse = java.util.Arrays.copyOf(lastUse, windows);
        java.util.Arrays.fill(lastUse, old, windows, initialUse);
      }
    }
  }

  /** A blob's cached fraction, for status. */
  public record BlobUsage(String volumeKey, String cookieKey, long size, long cachedBytes, boolean inUse) {}

  /** The counters. */
  public static final class Stats {
    final LongAdder evictedBytes = new LongAdder();
    final LongAdder evictedWindows = new LongAdder();
    final LongAdder refetchedWindows = new LongAdder();
    final LongAdder removedBlobs = new LongAdder();
    final LongAdder throttledReads = new LongAdder();
    final LongAdder overBound = new LongAdder();

    public long evictedBytes() {
      return evictedBytes.sum();
    }

    public long evictedWindows() {
      return evictedWindows.sum();
    }

    /** Windows that were evicted and later fetched again. */
    public long refetchedWindows() {
      return refetchedWindows.sum();
    }

    public long removedBlobs() {
      return removedBlobs.sum();
    }

    /** READs that waited for room. */
    public long throttledReads() {
      return throttledReads.sum();
    }

    /** READs sent although nothing could be evicted within the throttle: the cache went over its bound. */
    public long overBound() {
      return overBound.sum();
    }
  }

  private final CacheStore store;
  private final OndemandCache cache;
  private final Config config;
  private final Stats stats = new Stats();
  private final Map<Path, Entry> entries = new HashMap<>();
  private volatile Puncher puncher = PUNCH;
  private long used; // guarded by this: sum of entries' used
  private long reserved; // guarded by this
  private boolean warnedOver;

  CacheBudget(CacheStore store, OndemandCache cache, Config config) {
    this.store = store;
    this.cache = cache;
    this.config = config;
  }

  public Config config() {
    return config;
  }

  public Stats stats() {
    return stats;
  }

  /** The front end's eviction rules (the fanotify relay's: mark before punching). */
  public void puncher(Puncher p) {
    this.puncher = p;
  }

  /** Bytes cached (measured), including what READs being served will add once they settle. */
  public synchronized long usedBytes() {
    remeasureDirty();
    return used;
  }

  // ---------------------------------------------------------------- readers

  /** A reader is about to check and use [offset, offset+length) of {@code file}: no eviction there until unpin. */
  public void pin(Path file, long offset, long length) {
    adjustPins(file, offset, length, 1);
  }

  /** The end of a {@link #pin}: the windows count as used now. */
  public void unpin(Path file, long offset, long length) {
    adjustPins(file, offset, length, -1);
  }

  private synchronized void adjustPins(Path path, long offset, long length, int delta) {
    Entry e = entryFor(path);
    if (e == null || length <= 0) {
      return;
    }
    long now = System.currentTimeMillis();
    int first = (int) (offset / config.window);
    int last = (int) ((offset + length - 1) / config.window);
    ensureWindows(e, (last + 1) * config.window);
    for (int w = first; w <= last; w++) {
      e.pins[w] += delta;
      e.lastUse[w] = now;
    }
    e.idleSince = -1;
  }

  /**
   * Makes room for the windows of [offset, offset+length) of {@code file} before its READs are
   * sent, evicting least recently used windows; returns the bytes reserved, to pass to {@link
   * #settle}. Waits (at most the throttle) when nothing can be evicted yet.
   */
  public long reserve(StoreFile file, long offset, long length) {
    if (config.limitBytes == 0 || length <= 0) {
      return 0;
    }
    long need = windowsCovering(offset, length) * config.window;
    long deadline = System.nanoTime() + config.maxThrottle.toNanos();
    boolean throttled = false;
    synchronized (this) {
      while (true) {
        remeasureDirty();
        if (used + reserved + need <= config.limitBytes) {
          break;
        }
        if (evictOne(file.path())) {
          continue;
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          stats.overBound.increment();
          if (!warnedOver) {
            warnedOver = true;
            log.warn("cache over its bound: {} bytes used, {} reserved, {} more needed, limit {}: nothing could be"
                + " evicted within {} ms (every window in use or used within the last {} ms)", used, reserved, need,
                config.limitBytes, config.maxThrottle.toMillis(), config.guard.toMillis());
          }
          break;
        }
        if (!throttled) {
          throttled = true;
          stats.throttledReads.increment();
        }
        try {
          wait(Math.max(1, Math.min(50, TimeUnit.NANOSECONDS.toMillis(left))));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      reserved += need;
    }
    return need;
  }

  /** The READs a reservation was for have completed (or failed): the file is measured again. */
  public synchronized void settle(StoreFile file, long reservedBytes) {
    reserved -= reservedBytes;
    Entry e = entryFor(file.path());
    if (e != null) {
      e.dirty = true;
      e.recentlySettled = 30; // a fetch started for it may land up to a read timeout later
      if (config.limitBytes > 0) {
        // What the daemon wrote beyond the reservation (windows fetched ahead of a sequential
        // reader) is evicted now, not at the next pass: the overshoot lasts one fetch.
        remeasure(e);
        evictToBound(file.path());
      }
    }
    notifyAll();
  }

  private long windowsCovering(long offset, long length) {
    return (offset + length - 1) / config.window - offset / config.window + 1;
  }

  // ---------------------------------------------------------------- eviction

  /**
   * One pass: measures what changed, evicts down to the bound, and removes blobs no mount has
   * used for the grace period ({@code removeUnusedNow}: for any time, as {@code gc} does).
   * Returns the bytes freed.
   */
  public long pass(boolean removeUnusedNow) {
    long freed = 0;
    synchronized (this) {
      scan();
      for (Entry e : entries.values()) {
        // The daemon writes without the shim seeing it (windows fetched ahead of a reader, a
        // prefetch, a timed-out READ's fetch that goes on): a blob in use is measured again.
        if (e.recentlySettled > 0 || cache.inUse(e.volumeKey, e.cookieKey)) {
          e.dirty = true;
          e.recentlySettled = Math.max(0, e.recentlySettled - 1);
        }
      }
      remeasureDirty();
      long before = used;
      if (config.limitBytes > 0) {
        evictToBound(null);
      }
      freed += before - used;
      long now = System.currentTimeMillis();
      for (Entry e : new ArrayList<>(entries.values())) {
        boolean inUse = cache.inUse(e.volumeKey, e.cookieKey) || pinned(e);
        if (inUse) {
          e.idleSince = -1;
          continue;
        }
        if (e.idleSince < 0) {
          e.idleSince = now;
        }
        if (removeUnusedNow || now - e.idleSince >= config.unusedGrace.toMillis()) {
          freed += removeBlob(e);
        }
      }
      if (used <= config.limitBytes) {
        warnedOver = false;
      }
      notifyAll();
    }
    return freed;
  }

  private static boolean pinned(Entry e) {
    for (int p : e.pins) {
      if (p > 0) {
        return true;
      }
    }
    return false;
  }

  /** Evicts windows until the cache and its reservations fit the bound, or nothing more may go. Guarded by this. */
  private void evictToBound(Path avoid) {
    while (used + reserved > config.limitBytes && evictOne(avoid)) {
      // evicted one window
    }
  }

  /** Evicts the least recently used evictable window (preferring other files than {@code avoid}'s). */
  private boolean evictOne(Path avoid) {
    long now = System.currentTimeMillis();
    long guard = config.guard.toMillis();
    Entry best = null;
    int bestW = -1;
    long bestUse = Long.MAX_VALUE;
    boolean bestAvoided = true;
    for (Entry e : entries.values()) {
      boolean avoided = e.path.equals(avoid);
      for (int w = 0; w < e.bytes.length; w++) {
        if (e.bytes[w] == 0 || e.pins[w] > 0 || now - e.lastUse[w] < guard) {
          continue;
        }
        long u = e.lastUse[w];
        // Other files first: a reader usually goes on in the file it reads.
        if ((bestAvoided && !avoided) || (avoided == bestAvoided && u < bestUse)) {
          best = e;
          bestW = w;
          bestUse = u;
          bestAvoided = avoided;
        }
      }
    }
    if (best == null) {
      return false;
    }
    long off = bestW * config.window;
    if (!punch(best, off, config.window)) {
      // The front end refused (the relay marks the file first and waits): not now.
      best.lastUse[bestW] = now; // try other windows first
      return evictOtherThan(best, avoid);
    }
    return true;
  }

  /** After a refusal: one more try, skipping the refused file (it stays refused for a while). */
  private boolean evictOtherThan(Entry refused, Path avoid) {
    long now = System.currentTimeMillis();
    long guard = config.guard.toMillis();
    Entry best = null;
    int bestW = -1;
    long bestUse = Long.MAX_VALUE;
    for (Entry e : entries.values()) {
      if (e == refused) {
        continue;
      }
      for (int w = 0; w < e.bytes.length; w++) {
        if (e.bytes[w] > 0 && e.pins[w] == 0 && now - e.lastUse[w] >= guard && e.lastUse[w] < bestUse) {
          best = e;
          bestW = w;
          bestUse = e.lastUse[w];
        }
      }
    }
    return best != null && punch(best, bestW * config.window, config.window);
  }

  /** Punches [off, off+len) of e through the front end's rules; true if freed. Guarded by this. */
  private boolean punch(Entry e, long off, long len) {
    StoreFile f;
    try {
      f = store.file(e.volumeKey, e.cookieKey);
      long fileSize = Posix.lseek(f.fd(), 0, Posix.SEEK_END);
      len = Math.min(len, fileSize - off);
      if (len <= 0) {
        e.dirty = true;
        remeasure(e);
        return false;
      }
      if (!puncher.punch(f, off, len)) {
        return false;
      }
    } catch (ErrnoException x) {
      log.warn("evicting [{}, +{}) of {}: {}", off, len, e.path, x.getMessage());
      return false;
    }
    int first = (int) (off / config.window);
    int last = (int) ((off + len - 1) / config.window);
    long freed = 0;
    for (int w = first; w <= last && w < e.bytes.length; w++) {
      freed += e.bytes[w];
      e.bytes[w] = 0;
      e.evicted.set(w);
    }
    e.used -= freed;
    used -= freed;
    stats.evictedBytes.add(freed);
    stats.evictedWindows.add(last - first + 1);
    log.debug("evicted [{}, {}) of {}: {} bytes", off, off + len, e.path, freed);
    return true;
  }

  /** Punches all of e and removes its file where allowed. Returns the bytes freed. Guarded by this. */
  private long removeBlob(Entry e) {
    long before = e.used;
    if (before > 0) {
      try {
        long size = Posix.lseek(store.file(e.volumeKey, e.cookieKey).fd(), 0, Posix.SEEK_END);
        if (!punch(e, 0, size)) {
          return 0;
        }
      } catch (ErrnoException x) {
        log.warn("removing {}: {}", e.path, x.getMessage());
        return 0;
      }
    }
    if (puncher.mayRemoveFiles() && cache.forget(e.volumeKey, e.cookieKey)) {
      entries.remove(e.path);
      used -= e.used;
      stats.removedBlobs.increment();
      log.info("removed {}: not used by any mount for {} s", e.path, config.unusedGrace.toSeconds());
      return before;
    }
    if (before > 0) {
      stats.removedBlobs.increment();
      log.info("emptied {}: not used by any mount for {} s", e.path, config.unusedGrace.toSeconds());
    }
    return before - e.used;
  }

  // ---------------------------------------------------------------- accounting

  /** Finds cache files not known yet (a restart, a new blob). Guarded by this. */
  private void scan() {
    for (String volume : store.volumes()) {
      for (String cookie : store.cookies(volume)) {
        Path p = store.root().resolve(CacheStore.escape(volume)).resolve(CacheStore.escape(cookie));
        entries.computeIfAbsent(p, k -> new Entry(volume, cookie, k));
      }
    }
  }

  /** The entry of a cache file path under the store, made if needed; null if not one of ours. */
  private Entry entryFor(Path path) {
    Entry e = entries.get(path);
    if (e != null) {
      return e;
    }
    Path rel = store.root().relativize(path);
    if (rel.getNameCount() != 2) {
      return null;
    }
    String volume = CacheStore.unescape(rel.getName(0).toString());
    String cookie = CacheStore.unescape(rel.getName(1).toString());
    if (volume == null || cookie == null) {
      return null;
    }
    e = new Entry(volume, cookie, path);
    entries.put(path, e);
    return e;
  }

  private void ensureWindows(Entry e, long fileSize) {
    int windows = (int) ((fileSize + config.window - 1) / config.window);
    if (windows > e.bytes.length) {
      e.size(windows, System.currentTimeMillis());
    }
  }

  private void remeasureDirty() {
    for (Entry e : entries.values()) {
      if (e.dirty) {
        remeasure(e);
      }
    }
  }

  /** Measures e's data per window (SEEK_DATA / SEEK_HOLE) through a private read-only fd. */
  private void remeasure(Entry e) {
    e.dirty = false;
    int fd;
    try {
      fd = Posix.open(e.path.toString(), Posix.O_RDONLY | Posix.O_CLOEXEC | Posix.O_NOFOLLOW, 0);
    } catch (ErrnoException x) {
      used -= e.used; // the file is gone: nothing cached
      e.used = 0;
      java.util.Arrays.fill(e.bytes, 0);
      return;
    }
    try {
      long size = Posix.lseek(fd, 0, Posix.SEEK_END);
      long initialUse = e.bytes.length == 0 ? mtimeMillis(e.path) : System.currentTimeMillis();
      int windows = (int) ((size + config.window - 1) / config.window);
      if (windows > e.bytes.length) {
        e.size(windows, initialUse);
      }
      long[] now = new long[e.bytes.length];
      long pos = 0;
      while (pos < size) {
        long data = Posix.seekData(fd, pos);
        if (data < 0 || data >= size) {
          break;
        }
        long hole = Posix.seekHole(fd, data);
        if (hole < 0) {
          hole = size;
        }
        for (long p = data; p < hole; ) {
          int w = (int) (p / config.window);
          long wEnd = Math.min(hole, (w + 1) * config.window);
          now[w] += wEnd - p;
          p = wEnd;
        }
        pos = hole;
      }
      long total = 0;
      for (int w = 0; w < now.length; w++) {
        if (now[w] > 0 && e.bytes[w] == 0 && e.evicted.get(w)) {
          stats.refetchedWindows.increment();
          e.evicted.clear(w);
        }
        total += now[w];
      }
      e.bytes = now;
      used += total - e.used;
      e.used = total;
    } catch (ErrnoException x) {
      log.warn("measuring {}: {}", e.path, x.getMessage());
    } finally {
      Posix.closeQuietly(fd);
    }
  }

  private static long mtimeMillis(Path p) {
    try {
      return Files.getLastModifiedTime(p).toMillis();
    } catch (IOException x) {
      return System.currentTimeMillis();
    }
  }

  // ---------------------------------------------------------------- status

  /** Every cache file's size and cached bytes (measured now). */
  public synchronized List<BlobUsage> blobs() {
    scan();
    remeasureDirty();
    List<BlobUsage> out = new ArrayList<>();
    for (Entry e : entries.values()) {
      long size = -1;
      try {
        byte[] v = Posix.getXattr(e.path.toString(), CacheStore.SIZE_XATTR);
        size = v == null ? -1 : Long.parseLong(new String(v, java.nio.charset.StandardCharsets.US_ASCII));
      } catch (ErrnoException | NumberFormatException x) {
        // vanished or not sized yet
      }
      out.add(new BlobUsage(e.volumeKey, e.cookieKey, size, e.used, cache.inUse(e.volumeKey, e.cookieKey)));
    }
    out.sort(java.util.Comparator.comparing(BlobUsage::volumeKey).thenComparing(BlobUsage::cookieKey));
    return out;
  }

  /** The cached bytes of every file under {@code root}, measured by SEEK_DATA: what a check compares accounting with. */
  public static long measure(Path root) throws IOException {
    long total = 0;
    try (Stream<Path> files = Files.walk(root)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        int fd = Posix.open(f.toString(), Posix.O_RDONLY | Posix.O_CLOEXEC, 0);
        try {
          long pos = 0;
          while ((pos = Posix.seekData(fd, pos)) >= 0) {
            long hole = Posix.seekHole(fd, pos);
            total += hole - pos;
            pos = hole;
          }
        } finally {
          Posix.closeQuietly(fd);
        }
      }
    }
    return total;
  }
}
