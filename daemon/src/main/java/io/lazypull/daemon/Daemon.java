package io.lazypull.daemon;

import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.sys.Errno;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The request loop: reads OPEN, CLOSE and READ requests from a {@link Device} and answers
 * them, the same for the kernel, the fuse-shim and the fanotify relay.
 *
 * <pre>
 *   loop thread:  awaitReadable -> read -> OPEN  -> open pool:  resolve, size, copen (or copen -errno)
 *                                       -> READ  -> cached? complete
 *                                                   backend not answering? complete without data
 *                                                   else fetch pool: fetch, verify, write, complete
 *                                                        timer: the read timeout passed? complete without data
 *                                       -> CLOSE -> drop the object (its fd closes after its last READ and fetch)
 * </pre>
 *
 * Every delivered OPEN is answered exactly once and every delivered READ is completed exactly
 * once, also when resolving or fetching fails: a READ completed without its data is the only
 * way to give the reader EIO instead of a hang. READs are idempotent: one whose range is
 * already cached (a re-delivery after a crash, or a range another READ fetched) completes at
 * once.
 *
 * <p>Bounded waits. A READ is completed by the read timeout at the latest, whatever the
 * backend does; its fetch goes on and fills the cache later (verified, like any other), and a
 * later READ of that window waits for the same fetch, with a timeout of its own. A backend
 * that did not answer (a READ timed out, or a request failed as unavailable) opens its {@link
 * CircuitBreaker}: READs and OPENs that need it then fail at once instead of each waiting the
 * read timeout, until a background probe gets an answer. The backends' own timeouts and
 * retries are fitted inside the read timeout ({@link DaemonConfig#fitBackend}), so a fetch
 * that outlives its READ ends soon after too.
 */
public final class Daemon implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Daemon.class);
  private static final long POLL_MILLIS = 500;
  /** Waits before probing a backend that stopped answering: 1 s, doubled up to 5 s. */
  private static final long PROBE_FIRST_NANOS = TimeUnit.SECONDS.toNanos(1);
  private static final long PROBE_MAX_NANOS = TimeUnit.SECONDS.toNanos(5);
  /** Prefetch fetches in flight at most: enough to fill a loopback link, few enough for 2 cores. */
  private static final int PREFETCH_FETCHES = 2;
  /** Prefetch-list fetches in flight at most: ranges reads are about to need; round trips overlap. */
  private static final int LIST_FETCHES = 8;

  private final Device device;
  private final Domains domains;
  private final Metrics metrics = new Metrics();
  private final Map<Integer, CacheObject> objects = new ConcurrentHashMap<>();
  private final Map<String, Long> sizes = new ConcurrentHashMap<>(); // blobs are immutable
  private final ExecutorService openPool;
  private final ExecutorService fetchPool;
  private final ScheduledExecutorService timer; // READ deadlines, probes of backends
  private final ExecutorService background; // probes, and READs completed at their deadline
  private final BackendHealth health;
  private final long readTimeoutNanos;
  private final Fetcher fetcher;
  private final PrefetchLists lists;
  private final Prefetcher prefetcher; // null: no background prefetch
  private final Path privateStateDir; // deleted on close when we made it
  private final Path tmpDir; // this process's temp files (state/tmp/PID)
  private final AtomicLong inFlight = new AtomicLong(); // requests read but not yet answered
  private volatile boolean stopping;
  private boolean closed; // guarded by this

  /**
   * @param indexReader reads piece digests of data blobs out of a verified meta blob (the cli
   *     wires erofs-tools' blob index here); null if none
   */
  public Daemon(Device device, Domains domains, DaemonConfig config, BlobIndexReader indexReader)
      throws IOException {
    this.device = device;
    this.domains = domains;
    Path state = config.stateDir();
    this.privateStateDir = state == null ? Files.createTempDirectory("lazypull-daemon") : null;
    if (state == null) {
      state = privateStateDir;
    }
    removeLeftovers(Files.createDirectories(state.resolve("tmp")));
    Path tmp = Files.createDirectories(state.resolve("tmp").resolve(Long.toString(ProcessHandle.current().pid())));
    this.tmpDir = tmp;
    this.openPool = Executors.newFixedThreadPool(Math.min(4, config.threads()), named("open"));
    this.fetchPool = Executors.newFixedThreadPool(config.threads(), named("fetch"));
    this.timer = Executors.newSingleThreadScheduledExecutor(named("deadline"));
    this.background = Executors.newCachedThreadPool(named("background"));
    this.health = new BackendHealth(timer, background, PROBE_FIRST_NANOS, PROBE_MAX_NANOS, metrics);
    this.readTimeoutNanos = config.readTimeout().toNanos();
    // Lists are recorded only where they outlive us (a state dir of our own goes with us).
    this.lists = new PrefetchLists(privateStateDir == null ? state.resolve("prefetch") : null, timer);
    this.fetcher = new Fetcher(config, fetchPool, new PieceCatalog(state),
        indexReader == null ? BlobIndexReader.NONE : indexReader, tmp, metrics, health, lists);
    this.prefetcher = config.prefetch() == DaemonConfig.Prefetch.NONE ? null
        : new Prefetcher(fetcher, health, o -> objects.get(o.objectId) == o, lists,
            config.prefetch() == DaemonConfig.Prefetch.ALL, config.fetchSize(), PREFETCH_FETCHES,
            LIST_FETCHES);
  }

  /**
   * Serves until {@link #stop()} is called or the device dies (then a {@link
   * DeviceDeadException} is thrown).
   */
  public void run() throws IOException {
    log.info("serving {}", device.describe());
    try {
      while (!stopping) {
        if (!device.awaitReadable(POLL_MILLIS)) {
          continue;
        }
        Request r;
        while (!stopping && (r = device.read()) != null) {
          dispatch(r);
        }
      }
    } catch (IOException e) {
      if (!stopping) {
        throw e;
      }
      // stop() and close() raced with a read: the device was let go on purpose.
    }
  }

  private void dispatch(Request r) {
    log.debug("{}", r);
    if (r instanceof Request.Open open) {
      inFlight.incrementAndGet();
      openPool.execute(() -> {
        try {
          onOpen(open);
        } finally {
          inFlight.decrementAndGet();
        }
      });
    } else if (r instanceof Request.Read read) {
      onRead(read);
    } else if (r instanceof Request.Close close) {
      onClose(close);
    }
  }

  private void onOpen(Request.Open open) {
    CrashPoints.maybeCrash(CrashPoints.Point.OPEN);
    Domains.BlobRef blob = null;
    long size;
    try {
      blob = domains.resolve(open.volumeKey(), open.cookieKey());
      Domains.BlobRef b = blob;
      size = sizeOf(b);
    } catch (IOException | RuntimeException e) {
      int errno = errnoOf(blob, e);
      metrics.openFailures.increment();
      log.warn("OPEN {} / {} failed: {} -> {}", open.volumeKey(), io.lazypull.protocol.MessageCodec.printable(open.cookieKey()),
          e.getMessage(), Errno.name(errno));
      try {
        device.copenError(open.msgId(), errno);
      } catch (IOException ce) {
        log.warn("copen {},-{} failed: {}", open.msgId(), errno, ce.getMessage());
      } finally {
        open.anonFd().close(); // after copen: the kernel fails an OPEN whose fd is already closed
      }
      return;
    }
    CacheObject obj = new CacheObject(open.objectId(), open.anonFd(), blob, size);
    CacheObject old = objects.put(open.objectId(), obj);
    if (old != null) {
      // The kernel only reuses an object id after its anon fd was released, so ours is stale.
      log.debug("object {} re-opened; dropping the stale entry", open.objectId());
      old.release();
    }
    // Recording starts before the copen: READs of the object may come (on another thread) as
    // soon as the copen is written, and a first READ missed is a list without its start.
    lists.opened(obj);
    try {
      device.copen(open.msgId(), size);
      metrics.opens.increment();
      log.info("OPEN domain {} blob {} size {} (object {}, from {})", blob.domain(), blob.digest(), size,
          open.objectId(), blob.source().describe());
      if (prefetcher != null) {
        prefetcher.add(obj);
      }
    } catch (IOException e) {
      log.warn("copen {},{} for {} failed: {}", open.msgId(), size, blob, e.getMessage());
      lists.closed(obj);
      if (objects.remove(open.objectId(), obj)) {
        obj.release();
      }
    }
  }

  private long sizeOf(Domains.BlobRef blob) throws IOException {
    Long known = sizes.get(blob.digest());
    if (known != null) {
      return known;
    }
    BlobSource source = blob.source();
    if (!health.allows(source)) {
      throw new IOException("backend " + source.describe() + " is not answering (see above); failing at once");
    }
    long size;
    try {
      size = source.size(blob.digest());
    } catch (IOException e) {
      health.failed(source, e, () -> source.size(blob.digest()));
      throw e;
    }
    health.answered(source);
    sizes.put(blob.digest(), size);
    return size;
  }

  private void onRead(Request.Read read) {
    CacheObject obj = objects.get(read.objectId());
    if (obj == null || !obj.acquire()) {
      // Cannot happen with a correct device (READs come after our copen); there is no fd to
      // complete it on. Loud, because the reader waits until it is killed or the object closes.
      log.error("READ {} for unknown object {}: cannot complete it", read.msgId(), read.objectId());
      return;
    }
    inFlight.incrementAndGet();
    long pageEnd = Fetcher.roundUp(obj.size, DaemonConfig.PAGE);
    long start = read.offset();
    long end = Math.min(read.end(), pageEnd);
    try {
      if (start >= end) {
        log.warn("READ {} of {} [{}, {}) is beyond its {} bytes", read.msgId(), obj, read.offset(), read.end(), obj.size);
        complete(obj, read, false);
        return;
      }
      if (obj.isCached(start, end)) {
        lists.read(obj, start, end);
        metrics.cacheHits.increment();
        complete(obj, read, true);
        return;
      }
    } catch (IOException e) {
      log.warn("READ {} of {}: cannot check the cache: {}", read.msgId(), obj, e.getMessage());
      complete(obj, read, false);
      return;
    }
    BlobSource source = obj.blob.source();
    if (!health.allows(source)) {
      log.debug("READ {} of blob {} [{}, {}): backend {} is not answering: failed at once", read.msgId(), obj.blob,
          start, end, source.describe());
      complete(obj, read, false);
      return;
    }
    CompletableFuture<Void> fill = fetcher.fill(obj, start, end);
    // Completed off the timer thread: completing a READ is device I/O, and other deadlines wait.
    ScheduledFuture<?> deadline = timer.schedule(
        () -> background.execute(() -> fill.completeExceptionally(new ReadTimeoutException())),
        readTimeoutNanos, TimeUnit.NANOSECONDS);
    fill.whenComplete((v, e) -> {
      deadline.cancel(false);
      Throwable cause = e instanceof CompletionException && e.getCause() != null ? e.getCause() : e;
      if (cause instanceof java.io.UncheckedIOException u) {
        cause = u.getCause();
      }
      if (cause instanceof ReadTimeoutException) {
        metrics.readTimeouts.increment();
        long ms = TimeUnit.NANOSECONDS.toMillis(readTimeoutNanos);
        log.warn("READ {} of blob {} [{}, {}): no data within the read timeout ({} ms): completed without"
            + " (the reader gets EIO); the fetch goes on", read.msgId(), obj.blob, start, end, ms);
        health.notAnswering(source, "no data for a READ within " + ms + " ms",
            Fetcher.probe(obj.blob, obj.size, start));
      } else if (cause != null) {
        log.warn("READ {} of blob {} [{}, {}) failed: {}", read.msgId(), obj.blob, start, end, cause.toString());
      }
      complete(obj, read, e == null);
    });
  }

  /** A READ's deadline passed (never thrown: it completes the READ's future). */
  private static final class ReadTimeoutException extends Exception {
    private static final long serialVersionUID = 1L;

    ReadTimeoutException() {
      super("read timeout", null, false, false);
    }
  }

  /** Completes a READ (exactly once) and drops the reference the READ held. */
  private void complete(CacheObject obj, Request.Read read, boolean ok) {
    CrashPoints.maybeCrash(CrashPoints.Point.WRITE);
    try {
      obj.fd.completeRead(read.msgId());
    } catch (IOException e) {
      // EINVAL: the reader was killed meanwhile (killable waits, Linux 6.10+). Nothing to redo.
      log.debug("completing READ {} of object {}: {}", read.msgId(), obj.objectId, e.getMessage());
    } finally {
      metrics.reads.increment();
      if (!ok) {
        metrics.readFailures.increment();
      }
      obj.release();
      inFlight.decrementAndGet();
    }
  }

  private void onClose(Request.Close close) {
    metrics.closes.increment();
    CacheObject obj = objects.remove(close.objectId());
    if (obj == null) {
      log.debug("CLOSE for unknown object {}", close.objectId());
      return;
    }
    log.info("CLOSE object {} (blob {})", close.objectId(), obj.blob);
    lists.closed(obj);
    obj.release();
  }

  /** The one place an exception becomes the errno an OPEN is failed with. */
  static int errnoOf(Domains.BlobRef blob, Throwable e) {
    if (e instanceof Domains.UnknownBlobException) {
      return Errno.ENOENT;
    }
    if (blob != null && e instanceof IOException io && blob.source().isNotFound(io)) {
      return Errno.ENOENT;
    }
    return Errno.EIO;
  }

  /** Counters since start. */
  public DaemonStats stats() {
    return metrics.snapshot();
  }

  /** Every backend used so far, and every one of the domains: breaker state, requests, latency. */
  public java.util.List<BackendStats> backendStats() {
    Map<String, String> states = health.states();
    java.util.Set<String> names = new java.util.TreeSet<>(states.keySet());
    names.addAll(metrics.backends.keySet());
    names.addAll(domains.describeSources());
    java.util.List<BackendStats> out = new java.util.ArrayList<>();
    for (String n : names) {
      out.add(metrics.backends.getOrDefault(n, new BackendMetrics()).snapshot(n, states.getOrDefault(n, "closed")));
    }
    return out;
  }

  /** Requests read from the device and not answered yet. */
  public long inFlight() {
    return inFlight.get();
  }

  /** The objects the device has open, as (domain, blob, size). */
  public java.util.List<OpenObject> openObjects() {
    java.util.List<OpenObject> out = new java.util.ArrayList<>();
    for (CacheObject o : objects.values()) {
      out.add(new OpenObject(o.blob.domain(), o.blob.digest(), o.size));
    }
    return out;
  }

  /** An object the device has open. */
  public record OpenObject(String domain, String blob, long size) {}

  /**
   * Asks {@link #run()} to return after the request it is handling. Requests already read are
   * still answered (see {@link #close()}).
   */
  public void stop() {
    stopping = true;
  }

  /**
   * Stops, waits (up to {@code timeoutMillis}) until every request read so far is answered,
   * closes every anon fd (the objects go to CLOSE, as on a crash, so that a successor re-opens
   * them) and releases this process's device fd. Used for hand-over to a standby and on exit.
   */
  @Override
  public synchronized void close() {
    stopping = true;
    if (closed) {
      return; // the shutdown hook and a hand-over may both get here; the second waits for the first
    }
    closed = true;
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (inFlight.get() > 0 && System.nanoTime() < deadline) {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    if (inFlight.get() > 0) {
      log.warn("closing with {} requests still unanswered", inFlight.get());
    }
    if (prefetcher != null) {
      prefetcher.close();
    }
    lists.close();
    openPool.shutdownNow();
    fetchPool.shutdownNow();
    timer.shutdownNow();
    background.shutdownNow();
    for (Integer id : objects.keySet()) {
      CacheObject obj = objects.remove(id);
      if (obj != null) {
        obj.release();
      }
    }
    device.close();
    deleteTree(tmpDir);
    if (privateStateDir != null) {
      deleteTree(privateStateDir);
    }
    log.info("stopped: {}", metrics.snapshot());
  }

  /**
   * The temp files of whole-blob fetches that killed daemons left: each daemon has its own
   * directory, tmp/PID; those of processes that are gone are removed.
   */
  private static void removeLeftovers(Path tmp) {
    try (var dirs = Files.list(tmp)) {
      for (Path d : (Iterable<Path>) dirs::iterator) {
        long pid;
        try {
          pid = Long.parseLong(d.getFileName().toString());
        } catch (NumberFormatException e) {
          continue;
        }
        if (pid != ProcessHandle.current().pid() && ProcessHandle.of(pid).isEmpty()) {
          deleteTree(d);
          log.debug("removed {}, left by a daemon that was killed", d);
        }
      }
    } catch (IOException e) {
      log.warn("listing {}: {}", tmp, e.getMessage());
    }
  }

  private static void deleteTree(Path dir) {
    try (var walk = Files.walk(dir)) {
      walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      log.debug("cleaning {}: {}", dir, e.getMessage());
    }
  }

  /**
   * Compiles the sha256 code on a background thread, so that the first READ a new daemon
   * serves (of a cold start, of a failover) is not hashed in the interpreter. Call first thing
   * at start; returns at once; once per JVM.
   */
  public static void warmUpDigests() {
    DigestWarmUp.start();
  }

  private static ThreadFactory named(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }
}
