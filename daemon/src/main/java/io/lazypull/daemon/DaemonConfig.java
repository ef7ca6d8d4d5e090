package io.lazypull.daemon;

import io.lazypull.backend.BackendOptions;
import java.nio.file.Path;
import java.time.Duration;

/**
 * How the daemon fetches. Immutable; {@link #defaults()} is what {@code lazypull daemon} uses
 * unless told otherwise.
 *
 * @param fetchSize the largest window: a sequential reader's windows grow up to it (a random
 *     read fetches only the pieces it touches); blobs without piece digests are fetched in
 *     aligned windows of this size; a prefetch step; a multiple of 4 KiB
 * @param threads fetch threads: concurrent backend requests; one slow fetch does not block the
 *     request loop or other fetches
 * @param wholeBlobMax blobs up to this size with no piece digests (meta blobs) are fetched whole
 *     and verified against their name before a byte is written
 * @param stateDir where the daemon keeps what must outlive it (piece digests learned from meta
 *     blobs, temp files); null: a private temp directory
 * @param readTimeout the longest a READ waits for its data: then it is completed without (the
 *     reader gets EIO) while the fetch goes on; the same for every front end
 * @param prefetch what the daemon fetches in the background ({@link Prefetcher})
 */
public record DaemonConfig(int fetchSize, int threads, long wholeBlobMax, Path stateDir, Duration readTimeout,
    Prefetch prefetch) {
  /** What is fetched in the background, besides what READs ask for. */
  public enum Prefetch {
    /** Nothing. */
    NONE,
    /** A blob's prefetch list ({@link PrefetchLists}), ahead of its reads, when it has one. */
    LIST,
    /** The prefetch list, then the whole blob, after and never before the READs. */
    ALL;

    /** all, list or none (any case). */
    public static Prefetch parse(String s) {
      for (Prefetch p : values()) {
        if (p.name().equalsIgnoreCase(s)) {
          return p;
        }
      }
      throw new IllegalArgumentException("--prefetch must be all, list or none, not '" + s + "'");
    }
  }

  public static final int PAGE = 4096;
  /** Well under a minute, and room for a stalled backend attempt plus one retry. */
  public static final Duration DEFAULT_READ_TIMEOUT = Duration.ofSeconds(20);
  /** The largest window: 4 MiB ranges reach a loopback S3's whole-blob throughput. */
  public static final int DEFAULT_FETCH_SIZE = 4 << 20;

  public DaemonConfig {
    if (fetchSize < PAGE || fetchSize % PAGE != 0) {
      throw new IllegalArgumentException("fetch size must be a positive multiple of 4096: " + fetchSize);
    }
    if (threads < 1 || threads > 1024) {
      throw new IllegalArgumentException("threads must be in 1..1024: " + threads);
    }
    if (wholeBlobMax < 0) {
      throw new IllegalArgumentException("wholeBlobMax must be >= 0: " + wholeBlobMax);
    }
    if (prefetch == null) {
      throw new IllegalArgumentException("prefetch must be given (NONE for none)");
    }
    if (readTimeout == null || readTimeout.toMillis() < 1) {
      throw new IllegalArgumentException("the read timeout must be at least 1 ms, not "
          + (readTimeout == null ? "none" : readTimeout.toMillis() + " ms"));
    }
  }

  /** Without background prefetch. */
  public DaemonConfig(int fetchSize, int threads, long wholeBlobMax, Path stateDir, Duration readTimeout) {
    this(fetchSize, threads, wholeBlobMax, stateDir, readTimeout, Prefetch.NONE);
  }

  public static DaemonConfig defaults() {
    return new DaemonConfig(DEFAULT_FETCH_SIZE, 16, 64L << 20, null, DEFAULT_READ_TIMEOUT, Prefetch.NONE);
  }

  public DaemonConfig withFetchSize(int v) {
    return new DaemonConfig(v, threads, wholeBlobMax, stateDir, readTimeout, prefetch);
  }

  public DaemonConfig withThreads(int v) {
    return new DaemonConfig(fetchSize, v, wholeBlobMax, stateDir, readTimeout, prefetch);
  }

  public DaemonConfig withWholeBlobMax(long v) {
    return new DaemonConfig(fetchSize, threads, v, stateDir, readTimeout, prefetch);
  }

  public DaemonConfig withStateDir(Path v) {
    return new DaemonConfig(fetchSize, threads, wholeBlobMax, v, readTimeout, prefetch);
  }

  public DaemonConfig withReadTimeout(Duration v) {
    return new DaemonConfig(fetchSize, threads, wholeBlobMax, stateDir, v, prefetch);
  }

  public DaemonConfig withPrefetch(Prefetch v) {
    return new DaemonConfig(fetchSize, threads, wholeBlobMax, stateDir, readTimeout, v);
  }

  /**
   * {@code base} fitted into the read timeout: every backend operation (a size, a range) ends
   * by the read timeout, retries included, and one attempt that gets no byte (or no
   * connection) is given up after at most half of it, so that a connection that stalled leaves
   * time for one retry on a fresh one. A fetch that outlives its READ is therefore bounded too.
   */
  public BackendOptions fitBackend(BackendOptions base) {
    Duration half = readTimeout.dividedBy(2);
    if (half.isZero()) {
      half = Duration.ofMillis(1);
    }
    Duration operation = base.operationTimeout() == null || base.operationTimeout().compareTo(readTimeout) > 0
        ? readTimeout : base.operationTimeout();
    return base.toBuilder().readTimeout(shorter(base.readTimeout(), half))
        .connectTimeout(shorter(base.connectTimeout(), half)).operationTimeout(operation).build();
  }

  private static Duration shorter(Duration a, Duration b) {
    return a.compareTo(b) <= 0 ? a : b;
  }
}
