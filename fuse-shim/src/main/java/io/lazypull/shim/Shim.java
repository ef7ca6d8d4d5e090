package io.lazypull.shim;

import io.lazypull.shim.ondemand.CacheStore;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.sys.Posix;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fuse-shim without its FUSE mount: the emulated cachefiles cache, its cache files and the
 * device socket a daemon connects to ({@code ShimDevice}). {@link #files()} is what the FUSE
 * binding (or a test) calls; {@code io.lazypull.shim.fuse.FuseShim} mounts it.
 */
public final class Shim implements Closeable {
  private static final Logger log = LoggerFactory.getLogger(Shim.class);
  private static final long STATS_EVERY_SECONDS = 60;

  private final CacheStore store;
  private final OndemandCache cache;
  private final DeviceServer server;
  private final ShimFiles files;
  private final ShimStats stats = new ShimStats();
  private final CacheBudget budget;
  private final ScheduledExecutorService ticker;
  private final AtomicBoolean closed = new AtomicBoolean();
  private final Path socket;

  private Shim(Path cacheDir, Path socket, Duration maxWait, CacheBudget.Config budgetConfig) throws IOException {
    this.socket = socket.toAbsolutePath();
    long nofile = Posix.raiseNoFileLimit(); // an fd per object (cache file) and per anon socket
    log.debug("RLIMIT_NOFILE {}", nofile);
    this.store = new CacheStore(cacheDir);
    DeviceServer s = null;
    try {
      s = DeviceServer.listen(this.socket);
      this.cache = new OndemandCache(store, s, maxWait);
      s.start(cache);
    } catch (IOException | RuntimeException e) {
      if (s != null) {
        s.close();
      }
      store.close();
      throw e;
    }
    this.server = s;
    this.budget = new CacheBudget(store, cache, budgetConfig);
    this.files = new ShimFiles(cache, store, stats, budget);
    this.ticker = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "shim-stats");
      t.setDaemon(true);
      return t;
    });
    long[] last = {-1};
    ticker.scheduleAtFixedRate(() -> {
      long reads = stats.fuseReads() + stats.lookups();
      if (reads != last[0]) {
        last[0] = reads;
        log.info("stats: {}", stats);
      }
    }, STATS_EVERY_SECONDS, STATS_EVERY_SECONDS, TimeUnit.SECONDS);
  }

  /**
   * Opens (creating it) the cache directory and listens on {@code socket} (SEQPACKET, 0600; a
   * stale socket file is replaced only if nothing listens on it).
   */
  public static Shim start(Path cacheDir, Path socket) throws IOException {
    return start(cacheDir, socket, OndemandCache.DEFAULT_MAX_WAIT);
  }

  /**
   * As {@link #start(Path, Path)}; a reader waits at most {@code maxWait} for the daemon's answer
   * (see {@link OndemandCache#maxWaitNanos()}).
   */
  public static Shim start(Path cacheDir, Path socket, Duration maxWait) throws IOException {
    return new Shim(cacheDir, socket, maxWait, CacheBudget.Config.unbounded());
  }

  /** As {@link #start(Path, Path, Duration)}, with the cache bounded by {@code budget}. */
  public static Shim start(Path cacheDir, Path socket, Duration maxWait, CacheBudget.Config budget)
      throws IOException {
    return new Shim(cacheDir, socket, maxWait, budget);
  }

  /**
   * Starts the eviction pass (every second): after the front end has set its rules ({@link
   * CacheBudget#puncher}) and taken over the cache files a predecessor left (a pass may open
   * cache files, and a file opened here first cannot be adopted any more).
   */
  public void startEviction() {
    ticker.scheduleWithFixedDelay(() -> {
      try {
        budget.pass(false);
      } catch (RuntimeException e) {
        log.warn("eviction pass: {}", e.toString());
      }
    }, 0, 1, TimeUnit.SECONDS);
  }

  /** The cache's bound and accounting. */
  public CacheBudget budget() {
    return budget;
  }

  public ShimFiles files() {
    return files;
  }

  public ShimStats stats() {
    return stats;
  }

  public Path socket() {
    return socket;
  }

  public Path cacheDir() {
    return store.root();
  }

  /** The cache files. */
  public CacheStore store() {
    return store;
  }

  /** The state machine, for diagnostics and tests. */
  public OndemandCache cache() {
    return cache;
  }

  /**
   * Stops fail-safe: every waiting reader and lookup gets EIO first, then the device socket and
   * the anon sockets close (a daemon sees its device die), then the cache files.
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    cache.shutdown();
    server.close();
    ticker.shutdownNow();
    store.close();
    log.info("shim stopped; stats: {}", stats);
  }

  /**
   * The first step of stopping: every waiting reader and lookup gets EIO and nothing new is
   * accepted, so FUSE threads return before the mount goes away. {@link #close} follows.
   */
  public void failWaiters() {
    cache.shutdown();
  }
}
