package io.lazypull.daemon;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prefetch lists: for each blob, the ranges its first reads fetched, in the order they came,
 * recorded by the daemon that first served it and kept in {@code STATE/prefetch/DIGEST}. A
 * later start with an empty cache (this node after the cache was emptied, or another node the
 * file was copied to) fetches those ranges first, ahead of its reads, instead of paying a
 * round trip per miss while it starts.
 *
 * <p>What is recorded is each READ's fetch window (its readahead included: the reads that part
 * serves never reach the daemon), or the READ itself where it was cached already; a range that
 * continues or overlaps the one before is merged into it.
 *
 * <p>A blob is recorded only while it has no list: from its OPEN until no READ of it came for
 * {@link #IDLE_NANOS} after one did (start-up is over), {@link #LIMIT_NANOS} after the OPEN at
 * the latest, its CLOSE or the daemon's stop; if no READ of it came within {@link
 * #FIRST_READ_NANOS} of the OPEN, nothing is recorded (a later OPEN tries again). Then the
 * list is written whole (temp file and rename), so a list is never half a file. Only READs are
 * seen, and a front end sends none for ranges already cached, which is why a recording blob is
 * not prefetched whole meanwhile (its reads would hit, unseen).
 *
 * <p>The file is text, one range per line as {@code OFFSET LENGTH} in decimal bytes, with
 * {@code #} comments: easy to read, to trim and to copy to other nodes. A file that does not
 * parse is ignored, saying why; ranges beyond the blob are clipped.
 */
final class PrefetchLists implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(PrefetchLists.class);
  /** Start-up is taken to be over after this long without a READ of the blob. */
  static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(2);
  /** A recording with no READ this long after the OPEN ends with no list. */
  static final long FIRST_READ_NANOS = TimeUnit.SECONDS.toNanos(10);
  /** A recording ends this long after the OPEN whatever happens. */
  static final long LIMIT_NANOS = TimeUnit.SECONDS.toNanos(30);
  /** Ranges a list holds at most (a start-up reads hundreds; a whole-image read, thousands). */
  static final int MAX_RANGES = 65_536;
  private static final Pattern DIGEST = Pattern.compile("[0-9a-f]{64}");

  /** One range of a list: [offset, offset + length) of the blob. */
  record Range(long offset, long length) {
    long end() {
      return offset + length;
    }
  }

  private final Path dir; // null: nothing recorded or read (no state dir that outlives us)
  private final ScheduledExecutorService timer;
  private final Map<String, Recording> recordings = new ConcurrentHashMap<>();

  PrefetchLists(Path dir, ScheduledExecutorService timer) {
    this.dir = dir;
    this.timer = timer;
  }

  /** The list of {@code digest}, clipped to {@code size}; empty if there is none (or it is bad). */
  List<Range> load(String digest, long size) {
    Path file = fileOf(digest);
    if (file == null) {
      return List.of();
    }
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      return List.of();
    } catch (IOException e) {
      log.warn("prefetch list {}: cannot read it ({}): ignored", file, e.getMessage());
      return List.of();
    }
    List<Range> ranges = new ArrayList<>();
    int n = 0;
    for (String line : lines) {
      n++;
      String s = line.strip();
      if (s.isEmpty() || s.startsWith("#")) {
        continue;
      }
      String[] f = s.split("\\s+");
      long off;
      long len;
      try {
        if (f.length != 2) {
          throw new NumberFormatException("two numbers expected");
        }
        off = Long.parseLong(f[0]);
        len = Long.parseLong(f[1]);
        if (off < 0 || len <= 0) {
          throw new NumberFormatException("negative offset or length not above 0");
        }
      } catch (NumberFormatException e) {
        log.warn("prefetch list {} line {}: '{}' is not 'OFFSET LENGTH' ({}): the list is ignored", file, n,
            s.length() > 80 ? s.substring(0, 80) + "..." : s, e.getMessage());
        return List.of();
      }
      if (off < size && ranges.size() < MAX_RANGES) {
        ranges.add(new Range(off, Math.min(len, size - off)));
      }
    }
    return ranges;
  }

  /** Starts recording {@code obj}'s blob if it has no list yet and nobody records it. */
  void opened(CacheObject obj) {
    Path file = fileOf(obj.blob.digest());
    if (file == null || has(obj.blob.digest())) {
      return;
    }
    Recording r = new Recording(obj, file);
    if (recordings.putIfAbsent(obj.blob.digest(), r) == null) {
      r.check = timer.scheduleWithFixedDelay(r::checkDone, 250, 250, TimeUnit.MILLISECONDS);
      log.debug("recording the prefetch list of blob {}", obj.blob);
    }
  }

  /** A READ of [start, end) of {@code obj} reached the daemon. */
  void read(CacheObject obj, long start, long end) {
    Recording r = recordings.get(obj.blob.digest());
    if (r != null) {
      r.add(start, end);
    }
  }

  /** True if {@code digest} has a list (that may still turn out not to parse). */
  boolean has(String digest) {
    Path file = fileOf(digest);
    return file != null && Files.exists(file);
  }

  /** True while {@code digest}'s first reads are being recorded. */
  boolean recording(String digest) {
    return recordings.containsKey(digest);
  }

  /** The object was closed: a recording it started ends. */
  void closed(CacheObject obj) {
    Recording r = recordings.get(obj.blob.digest());
    if (r != null && r.obj == obj) {
      r.finish("its object was closed");
    }
  }

  /** Ends every recording, writing what it has. */
  @Override
  public void close() {
    for (Recording r : recordings.values()) {
      r.finish("the daemon stops");
    }
  }

  private Path fileOf(String digest) {
    return dir == null || !DIGEST.matcher(digest).matches() ? null : dir.resolve(digest);
  }

  /** The first reads of one blob, merged where one continues the last. */
  private final class Recording {
    final CacheObject obj;
    final Path file;
    final long opened = System.nanoTime();
    final List<Range> ranges = new ArrayList<>(); // guarded by this
    long lastRead; // guarded by this; 0: none yet
    ScheduledFuture<?> check;
    private boolean done; // guarded by this

    Recording(CacheObject obj, Path file) {
      this.obj = obj;
      this.file = file;
    }

    synchronized void add(long start, long end) {
      if (done) {
        return;
      }
      lastRead = System.nanoTime();
      Range last = ranges.isEmpty() ? null : ranges.get(ranges.size() - 1);
      if (last != null && start >= last.offset() && start <= last.end()) {
        ranges.set(ranges.size() - 1, new Range(last.offset(), Math.max(end, last.end()) - last.offset()));
      } else if (ranges.size() < MAX_RANGES) {
        ranges.add(new Range(start, end - start));
      }
    }

    void checkDone() {
      long now = System.nanoTime();
      long idleSince;
      synchronized (this) {
        idleSince = lastRead;
      }
      if (now - opened > LIMIT_NANOS) {
        finish("its time was up");
      } else if (idleSince == 0 && now - opened > FIRST_READ_NANOS) {
        finish("no read in " + TimeUnit.NANOSECONDS.toSeconds(FIRST_READ_NANOS) + " s");
      } else if (idleSince != 0 && now - idleSince > IDLE_NANOS) {
        finish("no read of it for " + TimeUnit.NANOSECONDS.toSeconds(IDLE_NANOS) + " s");
      }
    }

    void finish(String why) {
      List<Range> list;
      synchronized (this) {
        if (done) {
          return;
        }
        done = true;
        list = List.copyOf(ranges);
      }
      if (check != null) {
        check.cancel(false);
      }
      try {
        if (!list.isEmpty()) {
          write(list);
          long bytes = list.stream().mapToLong(Range::length).sum();
          log.info("prefetch list of blob {} recorded ({}): {} ranges, {} bytes, in {}", obj.blob, why, list.size(),
              bytes, file);
        }
      } catch (IOException e) {
        log.warn("prefetch list of blob {}: cannot write {}: {}", obj.blob, file, e.getMessage());
      } finally {
        recordings.remove(obj.blob.digest(), this);
      }
    }

    private void write(List<Range> list) throws IOException {
      Files.createDirectories(dir);
      StringBuilder sb = new StringBuilder();
      sb.append("# lazypull prefetch list of blob ").append(obj.blob.digest()).append(", recorded ")
          .append(Instant.now()).append("\n# OFFSET LENGTH: ranges its first reads asked for, in that order\n");
      for (Range r : list) {
        sb.append(r.offset()).append(' ').append(r.length()).append('\n');
      }
      Path tmp = dir.resolve("." + obj.blob.digest() + "." + ProcessHandle.current().pid() + ".tmp");
      Files.writeString(tmp, sb, StandardCharsets.UTF_8);
      Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
