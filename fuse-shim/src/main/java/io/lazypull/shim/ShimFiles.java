package io.lazypull.shim;

import io.lazypull.protocol.CacheFiles;
import io.lazypull.shim.ondemand.CacheObject;
import io.lazypull.shim.ondemand.CacheStore;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.shim.ondemand.PendingRequest;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The shim's filesystem, independent of the FUSE binding:
 *
 * <pre>
 *   /                     directory: the domains that have opened objects or cache files
 *   /&lt;domain&gt;/            directory, any name: volume key "erofs,&lt;domain&gt;"
 *   /&lt;domain&gt;/&lt;blob&gt;     read-only file, cookie key "&lt;blob&gt;", size = the copen size;
 *                         its lookup sends OPEN (once per object), reads send READs
 * </pre>
 *
 * A read is rounded to 4 KiB blocks; the holes of the cache file in that range (SEEK_DATA /
 * SEEK_HOLE) become one READ request each; the reader waits for all of them (until they are
 * completed, the device dies, or {@link OndemandCache#maxWaitNanos()} has passed: EIO), then
 * checks again: data at a requested offset that is still a hole means the daemon failed it
 * (EIO); a partly filled hole yields a READ for the rest. The bytes are then read from the cache
 * file straight into the caller's buffer.
 *
 * <p>Names are bytes: FUSE hands them over as UTF-8 strings, keys are ISO-8859-1 strings (one
 * char per byte), and the two conversions below map one to the other.
 */
public final class ShimFiles {
  private static final Logger log = LoggerFactory.getLogger(ShimFiles.class);
  /** How often a waiting reader logs "still waiting". */
  static final long LOG_EVERY_MILLIS = 30_000;

  /** A FUSE getattr answer. */
  public record Attr(boolean directory, long size) {}

  /** An open blob file: the object as it was when opened (a dead one stays dead). */
  public static final class Handle {
    final long fh;
    final CacheObject object;

    Handle(long fh, CacheObject object) {
      this.fh = fh;
      this.object = object;
    }

    public long fh() {
      return fh;
    }

    public CacheObject object() {
      return object;
    }
  }

  private final OndemandCache cache;
  private final CacheStore store;
  private final ShimStats stats;
  private final CacheBudget budget;
  private final Map<Long, Handle> handles = new ConcurrentHashMap<>();
  private final AtomicLong nextFh = new AtomicLong(1);

  ShimFiles(OndemandCache cache, CacheStore store, ShimStats stats, CacheBudget budget) {
    this.cache = cache;
    this.store = store;
    this.stats = stats;
    this.budget = budget;
  }

  // ---------------------------------------------------------------- names

  /** The volume key of a domain directory. */
  public static String volumeKey(String domain) {
    return CacheFiles.EROFS_VOLUME_PREFIX + key(domain);
  }

  /** A FUSE name as a key (its UTF-8 bytes, one char per byte). */
  public static String key(String fuseName) {
    return new String(fuseName.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
  }

  /** A key as a FUSE name. */
  public static String fuseName(String key) {
    return new String(key.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
  }

  private static String[] split(String path) throws ErrnoException {
    String p = path.startsWith("/") ? path.substring(1) : path;
    if (p.isEmpty()) {
      return new String[0];
    }
    String[] parts = p.split("/", -1);
    for (String s : parts) {
      if (s.isEmpty()) {
        throw new ErrnoException("lookup", Errno.ENOENT, path);
      }
    }
    return parts;
  }

  // ---------------------------------------------------------------- operations

  /** getattr: directories for / and /domain, the object's size for /domain/blob (may send OPEN). */
  public Attr getattr(String path) throws ErrnoException {
    String[] p = split(path);
    switch (p.length) {
      case 0:
      case 1:
        return new Attr(true, 0);
      case 2:
        return new Attr(false, lookup(p[0], p[1]).size());
      default:
        throw new ErrnoException("lookup", Errno.ENOENT, path);
    }
  }

  /** The names in a directory (without "." and ".."). */
  public List<String> readdir(String path) throws ErrnoException {
    String[] p = split(path);
    TreeSet<String> names = new TreeSet<>();
    if (p.length == 0) {
      List<String> volumes = store.volumes();
      for (CacheObject o : cache.objects()) {
        if (o.size() >= 0) {
          volumes.add(o.volumeKey());
        }
      }
      for (String v : volumes) {
        String domain = CacheFiles.erofsDomain(v);
        if (domain != null && !domain.isEmpty() && domain.indexOf('/') < 0) {
          names.add(fuseName(domain));
        }
      }
    } else if (p.length == 1) {
      String volume = volumeKey(p[0]);
      List<String> cookies = store.cookies(volume);
      for (CacheObject o : cache.objects()) {
        if (o.volumeKey().equals(volume) && o.size() >= 0) {
          cookies.add(o.cookieKey());
        }
      }
      for (String c : cookies) {
        if (!c.isEmpty() && c.indexOf('/') < 0) {
          names.add(fuseName(c));
        }
      }
    } else {
      throw new ErrnoException("readdir", p.length == 2 ? Errno.ENOTDIR : Errno.ENOENT, path);
    }
    return new ArrayList<>(names);
  }

  /** FUSE open: read-only blob files only; returns the file handle. */
  public long open(String path, int flags) throws ErrnoException {
    String[] p = split(path);
    if (p.length != 2) {
      throw new ErrnoException("open", p.length < 2 ? Errno.EISDIR : Errno.ENOENT, path);
    }
    if ((flags & 3) != Posix.O_RDONLY) {
      throw new ErrnoException("open", Errno.EROFS, path);
    }
    return open(p[0], p[1]).fh();
  }

  /** Opens a blob: its lookup (OPEN if needed), then one more user of the object. */
  public Handle open(String domain, String blob) throws ErrnoException {
    CacheObject o = lookup(domain, blob);
    cache.acquire(o);
    Handle h = new Handle(nextFh.getAndIncrement(), o);
    handles.put(h.fh, h);
    stats.opens.increment();
    return h;
  }

  /** FUSE release: the last one of an object queues its CLOSE. */
  public void release(long fh) {
    Handle h = handles.remove(fh);
    if (h != null) {
      cache.release(h.object);
    }
  }

  public void release(Handle h) {
    release(h.fh);
  }

  private CacheObject lookup(String domain, String blob) throws ErrnoException {
    stats.lookups.increment();
    return cache.lookup(volumeKey(domain), key(blob), LOG_EVERY_MILLIS);
  }

  /** FUSE read by file handle: bytes read into {@code dst} (from its position), or -errno. */
  public int read(long fh, ByteBuffer dst, long offset) {
    Handle h = handles.get(fh);
    return h == null ? -Errno.EBADF : read(h, dst, offset);
  }

  /**
   * Reads {@code dst.remaining()} bytes at {@code offset} (fewer at the end of the blob) into
   * {@code dst}, fetching what the cache file lacks through READ requests. Returns the count,
   * or -errno; {@code dst}'s position is not moved.
   */
  public int read(Handle h, ByteBuffer dst, long offset) {
    stats.fuseReads.increment();
    CacheObject o = h.object;
    int want = dst.remaining();
    if (offset < 0) {
      return -Errno.EINVAL;
    }
    if (offset >= o.size() || want == 0) {
      return fetch(o, offset, want) < 0 ? -Errno.EIO : 0;
    }
    // Pinned from the check to the pread: eviction punching the range in between would make
    // the pread return the zeros of a hole.
    java.nio.file.Path file = o.file().path();
    budget.pin(file, offset, want);
    try {
      return readPinned(o, dst, offset, want);
    } finally {
      budget.unpin(file, offset, want);
    }
  }

  private int readPinned(CacheObject o, ByteBuffer dst, long offset, int want) {
    int reads = fetch(o, offset, want);
    if (reads < 0) {
      return reads;
    }
    if (reads == 0) {
      stats.cacheHits.increment();
    }
    long end = Math.min(offset + want, o.size());
    ByteBuffer out = dst.duplicate();
    out.limit(out.position() + (int) (end - offset));
    int total = 0;
    try {
      while (out.hasRemaining()) {
        int n = Posix.pread(o.file().fd(), out, offset + total);
        if (n == 0) {
          break;
        }
        total += n;
      }
    } catch (ErrnoException e) {
      return failed(o, offset, want, e.getMessage(), -e.errno());
    }
    stats.bytesServed.add(total);
    return total;
  }

  /**
   * Makes [offset, offset+length) of {@code o} present in its cache file: the range is rounded
   * out to 4 KiB blocks and cut at the object's size; each hole becomes one READ request; this
   * waits for all of them (until they are completed or the device dies; a daemon that serves
   * completes each within its read timeout, and when none answers at all, this gives up with
   * EIO after the cache's {@link OndemandCache#maxWaitNanos()} and withdraws the READs), then
   * checks again. Data at a requested offset that is still a hole means the daemon failed it;
   * a partly filled hole yields a READ for the rest. Returns the number of READ requests sent
   * (0: all cached), or -errno (EIO). The FUSE reads and the fanotify front end's events both
   * come here.
   */
  public int fetch(CacheObject o, long offset, long length) {
    if (o.isDead()) {
      return failed(o, offset, length, "its device died (remount after the daemon is back)", -Errno.EIO);
    }
    long size = o.size();
    if (offset < 0 || length < 0) {
      return -Errno.EINVAL;
    }
    if (offset >= size || length == 0) {
      return 0;
    }
    long start = offset & -(long) CacheFiles.PAGE_SIZE;
    long stop = CacheStore.roundUp(Math.min(offset + length, size));
    int fd = o.file().fd();
    long deadline = System.nanoTime() + cache.maxWaitNanos();
    try {
      Map<Long, Integer> asked = new HashMap<>(); // hole start -> msg id of its READ
      while (true) {
        List<long[]> holes = holes(fd, start, stop);
        if (holes.isEmpty()) {
          return asked.size();
        }
        List<PendingRequest> reads = new ArrayList<>(holes.size());
        long reserved = budget.reserve(o.file(), holes.get(0)[0], holes.get(holes.size() - 1)[1] - holes.get(0)[0]);
        try {
          int r = requestAndAwait(o, offset, length, holes, asked, reads, deadline);
          if (r < 0) {
            return r;
          }
        } finally {
          budget.settle(o.file(), reserved);
        }
      }
    } catch (ErrnoException e) {
      return failed(o, offset, length, e.getMessage(), -e.errno());
    }
  }

  /** Sends a READ for each hole and waits for them; 0, or -errno. */
  private int requestAndAwait(CacheObject o, long offset, long length, List<long[]> holes, Map<Long, Integer> asked,
      List<PendingRequest> reads, long deadline) {
    for (long[] hole : holes) {
      Integer earlier = asked.get(hole[0]);
      if (earlier != null) {
        return failed(o, offset, length, "READ msg " + Integer.toUnsignedString(earlier)
            + " was completed without data at " + hole[0], -Errno.EIO);
      }
      PendingRequest r = cache.requestRead(o, hole[0], hole[1] - hole[0]);
      stats.readRequests.increment();
      asked.put(hole[0], r.msgId());
      reads.add(r);
    }
    for (PendingRequest r : reads) {
      int res = r.await(log, LOG_EVERY_MILLIS, deadline);
      if (res == -Errno.ETIMEDOUT) {
        reads.forEach(cache::abandon);
        return failed(o, offset, length, "no answer from the daemon within "
            + java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(cache.maxWaitNanos()) + " ms to " + r
            + " (no daemon serving?)", -Errno.EIO);
      }
      if (res < 0) {
        return failed(o, offset, length, r + ": " + Errno.describe(-res), res);
      }
    }
    return 0;
  }

  /**
   * True if [offset, offset+length) of {@code o}, rounded out to 4 KiB blocks and cut at its
   * size, is all in its cache file (one SEEK_HOLE; no request is sent).
   */
  public static boolean isCached(CacheObject o, long offset, long length) throws ErrnoException {
    long size = o.size();
    if (offset >= size || length <= 0) {
      return true;
    }
    long start = Math.max(0, offset) & -(long) CacheFiles.PAGE_SIZE;
    long stop = CacheStore.roundUp(Math.min(offset + length, size));
    long hole = Posix.seekHole(o.file().fd(), start);
    return hole >= stop;
  }

  private int failed(CacheObject o, long offset, long length, String cause, int result) {
    stats.readFailures.increment();
    log.warn("read of {} [{}, {}) failed: {}", o.describe(), offset, offset + length, cause);
    return result;
  }

  /** The holes of [start, stop) in the file, cut at data, as [from, to) pairs. */
  static List<long[]> holes(int fd, long start, long stop) throws ErrnoException {
    List<long[]> out = new ArrayList<>();
    long pos = start;
    while (pos < stop) {
      long data = Posix.seekData(fd, pos);
      if (data < 0 || data >= stop) {
        out.add(new long[] {pos, stop});
        break;
      }
      if (data > pos) {
        out.add(new long[] {pos, data});
      }
      long hole = Posix.seekHole(fd, data);
      if (hole < 0) {
        break;
      }
      pos = hole;
    }
    return out;
  }
}
