package io.lazypull.backend;

/**
 * Counters of one backend since it was opened.
 *
 * @param requests attempts sent to the store (each retry is one more)
 * @param retries attempts that were retries after a TRANSIENT failure
 * @param errors operations that failed for good (after retries); NOT_FOUND answers are not errors
 * @param timeouts attempts aborted because they made no progress within the read timeout
 * @param bytesRead bytes delivered to callers by reads and downloads
 * @param bytesWritten bytes uploaded by put
 */
public record BackendStats(long requests, long retries, long errors, long timeouts,
    long bytesRead, long bytesWritten) {
  public static final BackendStats ZERO = new BackendStats(0, 0, 0, 0, 0, 0);
}
