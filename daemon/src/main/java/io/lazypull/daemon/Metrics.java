package io.lazypull.daemon;

import java.util.concurrent.atomic.LongAdder;

/** The daemon's counters, updated on the request path without locks. */
final class Metrics {
  final LongAdder opens = new LongAdder();
  final LongAdder openFailures = new LongAdder();
  final LongAdder closes = new LongAdder();
  final LongAdder reads = new LongAdder();
  final LongAdder readFailures = new LongAdder();
  final LongAdder readTimeouts = new LongAdder();
  final LongAdder failedFast = new LongAdder();
  final LongAdder backendOutages = new LongAdder();
  final LongAdder cacheHits = new LongAdder();
  final LongAdder fetches = new LongAdder();
  final LongAdder mergedReads = new LongAdder();
  final LongAdder bytesFetched = new LongAdder();
  final LongAdder bytesWritten = new LongAdder();
  final LongAdder integrityFailures = new LongAdder();
  /** Per backend (by its description): requests, bytes, latency. */
  final java.util.Map<String, BackendMetrics> backends = new java.util.concurrent.ConcurrentHashMap<>();

  BackendMetrics backend(BlobSource source) {
    return backends.computeIfAbsent(source.describe(), k -> new BackendMetrics());
  }

  DaemonStats snapshot() {
    return new DaemonStats(opens.sum(), openFailures.sum(), closes.sum(), reads.sum(), readFailures.sum(),
        readTimeouts.sum(), failedFast.sum(), backendOutages.sum(), cacheHits.sum(), fetches.sum(), mergedReads.sum(), bytesFetched.sum(), bytesWritten.sum(),
        integrityFailures.sum());
  }
}
