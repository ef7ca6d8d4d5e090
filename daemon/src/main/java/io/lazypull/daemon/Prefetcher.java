package io.lazypull.daemon;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.PriorityBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Background prefetch. A blob the device opens is first fetched along its prefetch list
 * ({@link PrefetchLists}), when it has one: those ranges, merged into steps, in the order the
 * list gives, at once and ahead of the READs that will ask for them. Then, with {@code whole},
 * once its list has been fetched, it is fetched whole, one blob after another, from its first
 * hole to its end, in steps of the largest window; that never competes with a READ: a step
 * starts only while no demand fetch runs (a READ's fetch starts at once and the next step
 * waits for it to end). A blob whose first reads are being recorded is fetched whole only once
 * the recording ends, since reads that hit prefetched ranges would not be recorded. Lists go
 * before whole blobs (a blob being fetched whole stops between steps when a list is queued, and
 * goes on after it, from its first hole; a stream stopped before half the blob arrived starts
 * again from the beginning, writing only what is missing); at most {@code listConcurrency} list fetches (ranges reads are about to
 * need: their round trips overlap) or {@code concurrency} whole-blob fetches are in flight, on
 * threads of its own; what is cached or being fetched is skipped; nothing starts while the
 * blob's backend is not answering; prefetch of an object that was closed stops. A READ that
 * needs a range a step is fetching waits on that fetch, as on any other (bounded by the read
 * timeout like every READ).
 */
final class Prefetcher implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Prefetcher.class);
  private static final long POLL_MILLIS = 500;
  /** How often a blob waiting for its recording to end is looked at again. */
  private static final long RECORDING_POLL_MILLIS = 100;

  private final Fetcher fetcher;
  private final BackendHealth health;
  private final Predicate<CacheObject> open;
  private final PrefetchLists lists;
  private final boolean whole;
  private final long step;
  private final Semaphore slots;
  private final Semaphore listSlots;
  private final ExecutorService pool;
  /** Lists first, then whole blobs; each kind in the order queued. Taken as soon as queued. */
  private final PriorityBlockingQueue<Job> queue = new PriorityBlockingQueue<>(16,
      Comparator.comparing((Job j) -> !j.list()).thenComparingLong(Job::seq));
  private final AtomicLong queued = new AtomicLong();
  private final Thread thread;
  private volatile boolean closed;

  /**
   * @param open whether an object is still open (not CLOSEd): prefetch of a closed one stops
   * @param whole whether blobs are fetched whole after their list
   * @param step bytes per prefetch fetch
   */
  Prefetcher(Fetcher fetcher, BackendHealth health, Predicate<CacheObject> open, PrefetchLists lists, boolean whole,
      long step, int concurrency, int listConcurrency) {
    this.fetcher = fetcher;
    this.health = health;
    this.open = open;
    this.lists = lists;
    this.whole = whole;
    this.step = step;
    this.slots = new Semaphore(concurrency);
    this.listSlots = new Semaphore(listConcurrency);
    AtomicInteger n = new AtomicInteger();
    this.pool = Executors.newFixedThreadPool(Math.max(concurrency, listConcurrency), r -> {
      Thread t = new Thread(r, "prefetch-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    this.thread = new Thread(this::run, "prefetcher");
    thread.setDaemon(true);
    thread.start();
  }

  /** One blob's prefetch list, or the rest of the blob (whole). */
  private record Job(boolean list, long seq, CacheObject obj) {}

  /**
   * Queues {@code obj}: its prefetch list if it has one, then (with {@code whole}) the rest of it.
   * (A blob without a list queues no list job: one would stop another blob's stream for nothing.)
   */
  void add(CacheObject obj) {
    if (!closed) {
      if (lists.has(obj.blob.digest())) {
        queue.offer(new Job(true, queued.incrementAndGet(), obj));
      }
      if (whole) {
        queue.offer(new Job(false, queued.incrementAndGet(), obj));
      }
    }
  }

  private void run() {
    try {
      while (!closed) {
        Job job = queue.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
        if (job == null) {
          continue;
        }
        CacheObject obj = job.obj();
        if (job.list()) {
          prefetchList(obj);
          continue;
        }
        if (!open.test(obj)) {
          continue;
        }
        if (lists.recording(obj.blob.digest())) {
          // After the others; its turn comes when the recording ends.
          queue.offer(new Job(false, queued.incrementAndGet(), obj));
          Thread.sleep(RECORDING_POLL_MILLIS);
          continue;
        }
        if (!prefetch(obj)) {
          queue.offer(job); // a list came: it goes first, then this goes on where the holes are
        }
      }
    } catch (InterruptedException e) {
      // closed
    }
  }

  /** Whether a blob's prefetch list waits: a whole-blob prefetch gives way to it. */
  private boolean listWaiting() {
    Job next = queue.peek();
    return next != null && next.list();
  }

  /** Fetches the ranges of {@code obj}'s prefetch list, merged into steps, in its order. */
  private void prefetchList(CacheObject obj) throws InterruptedException {
    List<PrefetchLists.Range> list = lists.load(obj.blob.digest(), obj.size);
    if (list.isEmpty()) {
      return;
    }
    long t0 = System.nanoTime();
    long unit = fetcher.unitOf(obj);
    // A gap this small is fetched with its neighbours: fewer bytes than a round trip costs.
    long gap = Math.max(unit, step / 16);
    List<CompletableFuture<Void>> steps = new ArrayList<>();
    long from = -1;
    long to = -1;
    long asked = 0;
    for (PrefetchLists.Range r : list) {
      long s = r.offset() / unit * unit;
      long e = Math.min(obj.size, Fetcher.roundUp(r.end(), unit));
      if (from >= 0 && s >= from && s <= to + gap && Math.max(to, e) - from <= step) {
        to = Math.max(to, e); // continues the step (the gap is fetched too: one request)
        continue;
      }
      if (from >= 0) {
        if (!issue(obj, from, to, steps)) {
          return;
        }
        asked += to - from;
      }
      from = s;
      to = e;
    }
    if (from >= 0 && issue(obj, from, to, steps)) {
      asked += to - from;
    }
    // The list ends before anything else is prefetched: a whole-blob stream beside it would
    // share the backend with the ranges the reads are about to need. Each fetch is bounded by
    // the read timeout (DaemonConfig.fitBackend), so this wait is too.
    CompletableFuture<Void> all = CompletableFuture.allOf(steps.toArray(new CompletableFuture<?>[0]));
    String failed = "";
    while (!closed && open.test(obj)) {
      try {
        all.get(POLL_MILLIS, TimeUnit.MILLISECONDS);
        break;
      } catch (java.util.concurrent.TimeoutException e) {
        // still fetching
      } catch (java.util.concurrent.ExecutionException e) {
        failed = "; a fetch failed (its READs fetch it again): " + e.getCause();
        break;
      }
    }
    log.info("prefetch list of blob {}: {} ranges ({} bytes, what was not cached fetched) in {} ms{}", obj.blob,
        list.size(), asked, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), failed);
  }

  /**
   * Starts fetching [from, to) of {@code obj} once a slot is free, adding it to {@code steps};
   * false if prefetch of it stopped (closed object, stopping prefetcher). Waits while its
   * backend is not answering.
   */
  private boolean issue(CacheObject obj, long from, long to, List<CompletableFuture<Void>> steps)
      throws InterruptedException {
    while (true) {
      if (closed || !open.test(obj)) {
        return false;
      }
      if (!health.allows(obj.blob.source())) {
        Thread.sleep(POLL_MILLIS); // the daemon probes it; no prefetch meanwhile
        continue;
      }
      if (listSlots.tryAcquire(POLL_MILLIS, TimeUnit.MILLISECONDS)) {
        break;
      }
    }
    steps.add(start(obj, from, to, listSlots));
    return true;
  }

  /** Starts a prefetch fetch of [from, to) of {@code obj}; a slot is held and released at its end. */
  private CompletableFuture<Void> start(CacheObject obj, long from, long to, Semaphore held) {
    CompletableFuture<Void> f;
    try {
      f = fetcher.prefetch(obj, from, to, pool);
    } catch (RuntimeException e) {
      held.release();
      throw e;
    }
    f.whenComplete((v, e) -> {
      held.release();
      if (e != null) {
        log.debug("prefetch of {} [{}, {}): {}", obj, from, to, e.toString());
      }
    });
    return f;
  }

  /**
   * Fetches what {@code obj} lacks, whole; false if it stopped because a list was queued (the
   * rest is fetched when it is taken again).
   */
  private boolean prefetch(CacheObject obj) throws InterruptedException {
    long t0 = System.nanoTime();
    if (mostlyMissing(obj)) {
      try {
        if (fetcher.stream(obj, () -> !closed && open.test(obj) && !listWaiting())) {
          log.info("prefetch of blob {}: streamed whole ({} ms)", obj.blob,
              TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
        }
      } catch (IOException | RuntimeException e) {
        if (listWaiting()) {
          log.debug("prefetch of blob {}: the stream stops for a prefetch list", obj.blob);
          return false;
        }
        log.info("prefetch of blob {}: the stream broke off ({}); fetching the rest in steps", obj.blob,
            e.toString());
      }
    }
    long unit = fetcher.unitOf(obj);
    long fileEnd = Fetcher.roundUp(obj.size, DaemonConfig.PAGE);
    long off = 0;
    long issued = 0;
    while (!closed && off < obj.size) {
      if (!open.test(obj)) {
        log.debug("prefetch of {} stopped: closed", obj);
        return true;
      }
      if (listWaiting()) {
        log.debug("prefetch of {} stops at {} for a prefetch list", obj, off);
        return false;
      }
      if (!fetcher.awaitNoDemand(POLL_MILLIS)) {
        continue; // READs first
      }
      if (!health.allows(obj.blob.source())) {
        Thread.sleep(POLL_MILLIS); // the daemon probes it; no prefetch meanwhile
        continue;
      }
      long hole;
      try {
        hole = obj.fd.seekHole(off);
      } catch (IOException e) {
        log.debug("prefetch of {} stopped: {}", obj, e.getMessage());
        return true;
      }
      if (hole < 0) {
        hole = off; // past the end of a cache file that grows as it is written
      } else if (hole >= fileEnd) {
        break;
      }
      long from = hole / unit * unit;
      long to = Math.min(obj.size, from + Math.max(step / unit, 1) * unit);
      if (!slots.tryAcquire(POLL_MILLIS, TimeUnit.MILLISECONDS)) {
        continue;
      }
      if (!fetcher.awaitNoDemand(0)) {
        slots.release(); // a READ's fetch began while this waited for a slot: it goes first
        continue;
      }
      start(obj, from, to, slots);
      issued += to - from;
      off = to;
    }
    if (!closed) {
      log.info("prefetch of blob {} issued to its end: {} bytes not cached yet were requested ({} ms)", obj.blob,
          issued, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    }
    return true;
  }

  /** True if less than half of {@code obj} is cached: then one stream is cheaper than steps. */
  private static boolean mostlyMissing(CacheObject obj) {
    try {
      long cached = 0;
      for (long pos = obj.fd.seekData(0); pos >= 0 && pos < obj.size; pos = obj.fd.seekData(pos)) {
        long hole = obj.fd.seekHole(pos);
        if (hole < 0) {
          hole = obj.size;
        }
        cached += hole - pos;
        pos = hole;
        if (hole >= obj.size) {
          break;
        }
      }
      return cached < obj.size / 2;
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public void close() {
    closed = true;
    thread.interrupt();
    pool.shutdownNow();
  }
}
