package io.lazypull.daemon;

import java.nio.file.Path;

/**
 * How the daemon fetches. Immutable; {@link #defaults()} is what {@code lazypull daemon} uses
 * unless told otherwise.
 *
 * @param fetchSize bytes fetched per backend request at least (READs are amplified to aligned
 *     windows of this size, so one fetch serves many small reads); a multiple of 4 KiB
 * @param threads fetch threads: concurrent backend requests; one slow fetch does not block the
 *     request loop or other fetches
 * @param wholeBlobMax blobs up to this size with no piece digests (meta blobs) are fetched whole
 *     and verified against their name before a byte is written
 * @param stateDir where the daemon keeps what must outlive it (piece digests learned from meta
 *     blobs, temp files); null: a private temp directory
 */
public record DaemonConfig(int fetchSize, int threads, long wholeBlobMax, Path stateDir) {
  public static final int PAGE = 4096;

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
  }

  public static DaemonConfig defaults() {
    return new DaemonConfig(1 << 20, 16, 64L << 20, null);
  }

  public DaemonConfig withFetchSize(int v) {
    return new DaemonConfig(v, threads, wholeBlobMax, stateDir);
  }

  public DaemonConfig withThreads(int v) {
    return new DaemonConfig(fetchSize, v, wholeBlobMax, stateDir);
  }

  public DaemonConfig withWholeBlobMax(long v) {
    return new DaemonConfig(fetchSize, threads, v, stateDir);
  }

  public DaemonConfig withStateDir(Path v) {
    return new DaemonConfig(fetchSize, threads, wholeBlobMax, v);
  }
}
