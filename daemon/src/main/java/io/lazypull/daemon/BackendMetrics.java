package io.lazypull.daemon;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;

/** Requests, bytes and a latency histogram of one backend, updated without locks. */
final class BackendMetrics {
  /** Bucket bounds in seconds: 1 ms to 20 s, for loopback to a distant, struggling store. */
  static final double[] BOUNDS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20};

  final LongAdder requests = new LongAdder();
  final LongAdder errors = new LongAdder();
  final LongAdder bytes = new LongAdder();
  private final LongAdder[] buckets = new LongAdder[BOUNDS.length + 1];
  private final DoubleAdder seconds = new DoubleAdder();

  BackendMetrics() {
    for (int i = 0; i < buckets.length; i++) {
      buckets[i] = new LongAdder();
    }
  }

  void observe(long nanos) {
    double s = nanos / 1e9;
    seconds.add(s);
    int i = 0;
    while (i < BOUNDS.length && s > BOUNDS[i]) {
      i++;
    }
    buckets[i].increment();
  }

  BackendStats snapshot(String backend, String state) {
    List<Double> bounds = new ArrayList<>();
    List<Long> counts = new ArrayList<>();
    long cumulative = 0;
    for (int i = 0; i < buckets.length; i++) {
      cumulative += buckets[i].sum();
      bounds.add(i < BOUNDS.length ? BOUNDS[i] : Double.POSITIVE_INFINITY);
      counts.add(cumulative);
    }
    return new BackendStats(backend, state, requests.sum(), errors.sum(), bytes.sum(), bounds, counts, seconds.sum());
  }
}
