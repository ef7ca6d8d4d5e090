package io.lazypull.daemon;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Background prefetch: every blob the device opens is fetched whole, one blob after another,
 * from its first hole to its end, in steps of the largest window, with at most {@code
 * concurrency} fetches in flight, on threads of its own. It never competes with a READ: it
 * starts a step only while no demand fetch runs (a READ's fetch starts at once and the next
 * step waits for it to end), skips what is cached or being fetched, pauses while the blob's
 * backend is not answering, and stops for an object that was closed. A READ that needs a
 * range a step is fetching waits on that fetch, as on any other (bounded by the read
 * timeout like every READ).
 */
final class Prefetcher implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Prefetcher.class);
  private static final long POLL_MILLIS = 500;

  private final Fetcher fetcher;
  private final BackendHealth health;
  private final Predicate<CacheObject> open;
  private final long step;
  private final Semaphore slots;
  private final ExecutorService pool;
  private final LinkedBlockingQueue<CacheObject> queue = new LinkedBlockingQueue<>();
  private final Thread thread;
  private volatile boolean closed;

  /**
   * @param open whether an object is still open (not CLOSEd): prefetch of a closed one stops
   * @param step bytes per prefetch fetch
   */
  Prefetcher(Fetcher fetcher, BackendHealth health, Predicate<CacheObject> open, long step, int concurrency) {
    this.fetcher = fetcher;
    this.health = health;
    this.open = open;
    this.step = step;
    this.slots = new Semaphore(concurrency);
    AtomicInteger n = new AtomicInteger();
    this.pool = Executors.newFixedThreadPool(concurrency, r -> {
      Thread t = new Thread(r, "prefetch-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
    this.thread = new Thread(this::run, "prefetcher");
    thread.setDaemon(true);
    thread.start();
  }

  /** Queues {@code obj} to be fetched whole. */
  void add(CacheObject obj) {
    if (!closed) {
      queue.offer(obj);
    }
  }

  private void run() {
    try {
      while (!closed) {
        CacheObject obj = queue.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
        if (obj != null) {
          prefetch(obj);
        }
      }
    } catch (InterruptedException e) {
      // closed
    }
  }

  private void prefetch(CacheObject obj) throws InterruptedException {
    long t0 = System.nanoTime();
    if (mostlyMissing(obj)) {
      try {
        if (fetcher.stream(obj, () -> !closed && open.test(obj))) {
          log.info("prefetch of blob {}: streamed whole ({} ms)", obj.blob,
              TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
        }
      } catch (IOException | RuntimeException e) {
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
        return;
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
        return;
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
      CompletableFuture<Void> f;
      try {
        f = fetcher.prefetch(obj, from, to, pool);
      } catch (RuntimeException e) {
        slots.release();
        throw e;
      }
      f.whenComplete((v, e) -> {
        slots.release();
        if (e != null) {
          log.debug("prefetch of {} [{}, {}): {}", obj, from, to, e.toString());
        }
      });
      issued += to - from;
      off = to;
    }
    if (!closed) {
      log.info("prefetch of blob {} issued to its end: {} bytes not cached yet were requested ({} ms)", obj.blob,
          issued, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    }
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
