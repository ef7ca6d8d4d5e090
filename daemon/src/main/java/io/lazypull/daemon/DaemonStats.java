package io.lazypull.daemon;

/**
 * A snapshot of the daemon's counters.
 *
 * @param opens OPENs answered with a size
 * @param openFailures OPENs answered with an errno
 * @param closes CLOSEs handled
 * @param reads READs completed (whatever the outcome)
 * @param readFailures READs completed without their data (the reader gets EIO)
 * @param readTimeouts of those, READs whose data had not come by the read timeout
 * @param failedFast OPENs and READs failed at once because their backend was not answering
 * @param backendOutages times a backend stopped answering (its circuit breaker opened)
 * @param cacheHits READs completed at once because the range was already cached (re-deliveries)
 * @param fetches backend requests made for READs
 * @param mergedReads READs that waited on a fetch another READ had started
 * @param bytesFetched bytes read from backends
 * @param bytesWritten bytes written into cache files
 * @param integrityFailures fetched ranges rejected because their digest did not match
 */
public record DaemonStats(long opens, long openFailures, long closes, long reads, long readFailures,
    long readTimeouts, long failedFast, long backendOutages, long cacheHits, long fetches, long mergedReads,
    long bytesFetched, long bytesWritten, long integrityFailures) {
  @Override
  public String toString() {
    return "opens=" + opens + " openFailures=" + openFailures + " closes=" + closes + " reads=" + reads
        + " readFailures=" + readFailures + " readTimeouts=" + readTimeouts + " failedFast=" + failedFast
        + " backendOutages=" + backendOutages + " cacheHits=" + cacheHits + " fetches=" + fetches
        + " mergedReads=" + mergedReads + " bytesFetched=" + bytesFetched + " bytesWritten=" + bytesWritten
        + " integrityFailures=" + integrityFailures;
  }
}
