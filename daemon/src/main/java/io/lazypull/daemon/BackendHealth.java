package io.lazypull.daemon;

import java.io.IOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's view of its backends: one {@link CircuitBreaker} per {@link BlobSource}, fed by
 * every request that reaches a backend, and the probes of the open ones (scheduled on the
 * daemon's timer, run on their own executor, one at a time per backend).
 */
final class BackendHealth {
  private static final Logger log = LoggerFactory.getLogger(BackendHealth.class);

  private final ScheduledExecutorService timer;
  private final Executor probes;
  private final long firstWaitNanos;
  private final long maxWaitNanos;
  private final Metrics metrics;
  private final Map<BlobSource, CircuitBreaker> breakers = new ConcurrentHashMap<>();

  BackendHealth(ScheduledExecutorService timer, Executor probes, long firstWaitNanos, long maxWaitNanos,
      Metrics metrics) {
    this.timer = timer;
    this.probes = probes;
    this.firstWaitNanos = firstWaitNanos;
    this.maxWaitNanos = maxWaitNanos;
    this.metrics = metrics;
  }

  CircuitBreaker of(BlobSource source) {
    return breakers.computeIfAbsent(source,
        s -> new CircuitBreaker(s.describe(), firstWaitNanos, maxWaitNanos, System::nanoTime));
  }

  /** The breaker state of every backend used so far ("closed", "open", "probing"), by description. */
  Map<String, String> states() {
    Map<String, String> out = new java.util.TreeMap<>();
    breakers.forEach((s, b) -> out.put(s.describe(), b.state().name().toLowerCase(java.util.Locale.ROOT)));
    return out;
  }

  /** True if a request may go to {@code source}; false (counted) while it does not answer. */
  boolean allows(BlobSource source) {
    boolean ok = of(source).allows();
    if (!ok) {
      metrics.failedFast.increment();
    }
    return ok;
  }

  /** {@code source} answered a request. */
  void answered(BlobSource source) {
    of(source).succeeded();
  }

  /**
   * A request to {@code source} failed with {@code e}: if the source says it is not answering,
   * the breaker opens (and its probes start), with {@code retry} as the probe.
   */
  void failed(BlobSource source, IOException e, CircuitBreaker.Probe retry) {
    if (source.isUnavailable(e)) {
      notAnswering(source, e.getMessage(), retry);
    }
  }

  /** {@code source} did not answer (a READ timed out waiting for it): the breaker opens. */
  void notAnswering(BlobSource source, String why, CircuitBreaker.Probe retry) {
    CircuitBreaker b = of(source);
    CircuitBreaker.Due due = b.failed(why, retry);
    if (due != null) {
      metrics.backendOutages.increment();
      schedule(source, b, due);
    }
  }

  private void schedule(BlobSource source, CircuitBreaker b, CircuitBreaker.Due due) {
    try {
      timer.schedule(() -> probe(source, b, due.episode()), due.delayNanos(), TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException stopping) {
      // the daemon is closing
    }
  }

  /** Runs the probe due for {@code episode}; any answer closes the breaker, even "not found". */
  private void probe(BlobSource source, CircuitBreaker b, long episode) {
    CircuitBreaker.Probe p = b.startProbe(episode);
    if (p == null) {
      return; // closed meanwhile, or a later episode has its own probes
    }
    try {
      probes.execute(() -> {
        try {
          p.run();
          b.succeeded();
        } catch (IOException e) {
          if (!source.isUnavailable(e)) {
            b.succeeded();
            return;
          }
          CircuitBreaker.Due next = b.probeFailed(episode, e.getMessage());
          if (next != null) {
            schedule(source, b, next);
          }
        } catch (RuntimeException e) {
          log.warn("{}: probe failed: {}", b, e.toString());
          CircuitBreaker.Due next = b.probeFailed(episode, e.toString());
          if (next != null) {
            schedule(source, b, next);
          }
        }
      });
    } catch (RejectedExecutionException stopping) {
      log.debug("{}: not probing, the daemon is closing", b);
    }
  }
}
