package io.lazypull.daemon;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether one backend answers, as a circuit breaker. Without it, every READ during an outage
 * would wait the whole read timeout for a backend that is known not to answer.
 *
 * <pre>
 *   CLOSED --failed--> OPEN --probe due--> PROBING --probe failed--> OPEN (next wait doubled, up to max)
 *     ^                 |                     |
 *     +--- succeeded ---+----- succeeded -----+   (the probe, or any other request that got an answer)
 * </pre>
 *
 * CLOSED: requests go to the backend. OPEN and PROBING: requests that need it fail at once (the
 * reader gets EIO); meanwhile one probe at a time repeats, in the background, a small request
 * that failed, and the first answer closes the breaker. "Failed" means the backend did not
 * answer (a timeout, a refused connection, 5xx after the retries, a READ that got no data
 * within the read timeout), never a wrong or missing blob.
 *
 * <p>A pure state machine: the caller runs the probes ({@link BackendHealth}); each opening is
 * an episode, so a probe scheduled for an earlier one is recognised as stale. Every change of
 * state is logged.
 */
final class CircuitBreaker {
  private static final Logger log = LoggerFactory.getLogger(CircuitBreaker.class);

  enum State {
    /** The backend answers: requests go to it. */
    CLOSED,
    /** It did not answer: requests fail at once; a probe is scheduled. */
    OPEN,
    /** A probe is running; requests still fail at once. */
    PROBING
  }

  /** The request a probe repeats. */
  @FunctionalInterface
  interface Probe {
    void run() throws IOException;
  }

  /** A probe to run after {@code delayNanos}, for opening {@code episode}. */
  record Due(long episode, long delayNanos) {}

  private final String backend;
  private final long firstWaitNanos;
  private final long maxWaitNanos;
  private final LongSupplier nanoTime;

  private State state = State.CLOSED;
  private long episode;
  private long waitNanos;
  private long openedAt;
  private long rejected; // requests failed at once in this episode
  private Probe probe;

  /**
   * @param backend names the backend in log lines
   * @param firstWaitNanos before the first probe; doubled after each failed one, up to {@code
   *     maxWaitNanos}
   */
  CircuitBreaker(String backend, long firstWaitNanos, long maxWaitNanos, LongSupplier nanoTime) {
    if (firstWaitNanos <= 0 || maxWaitNanos < firstWaitNanos) {
      throw new IllegalArgumentException("probe waits must be 0 < first <= max: " + firstWaitNanos + ", " + maxWaitNanos);
    }
    this.backend = backend;
    this.firstWaitNanos = firstWaitNanos;
    this.maxWaitNanos = maxWaitNanos;
    this.nanoTime = nanoTime;
  }

  synchronized State state() {
    return state;
  }

  /** True if a request may go to the backend now; false (and counted) while it is down. */
  synchronized boolean allows() {
    if (state == State.CLOSED) {
      return true;
    }
    rejected++;
    return false;
  }

  /**
   * The backend did not answer {@code why}; {@code retry} repeats that request, small. Returns
   * the first probe to schedule if this opened the breaker, else null.
   */
  synchronized Due failed(String why, Probe retry) {
    probe = retry;
    if (state != State.CLOSED) {
      return null;
    }
    state = State.OPEN;
    episode++;
    openedAt = nanoTime.getAsLong();
    rejected = 0;
    waitNanos = firstWaitNanos;
    log.warn("backend {} is not answering ({}): requests that need it fail at once until it does; probing it in {} ms",
        backend, why, millis(waitNanos));
    return new Due(episode, waitNanos);
  }

  /** The probe due for {@code ep} starts: returns what to run, or null if it is stale. */
  synchronized Probe startProbe(long ep) {
    if (state != State.OPEN || ep != episode) {
      return null;
    }
    state = State.PROBING;
    log.debug("backend {}: probing", backend);
    return probe;
  }

  /** The probe of {@code ep} got no answer: returns the next one to schedule, or null if stale. */
  synchronized Due probeFailed(long ep, String why) {
    if (state != State.PROBING || ep != episode) {
      return null;
    }
    state = State.OPEN;
    waitNanos = Math.min(maxWaitNanos, waitNanos * 2);
    log.info("backend {} is still not answering after {} ms ({}); next probe in {} ms", backend,
        millis(nanoTime.getAsLong() - openedAt), why, millis(waitNanos));
    return new Due(episode, waitNanos);
  }

  /** The backend answered a request (the probe or any other): closed. */
  synchronized void succeeded() {
    if (state == State.CLOSED) {
      return;
    }
    log.info("backend {} answers again after {} ms; {} requests failed at once meanwhile", backend,
        millis(nanoTime.getAsLong() - openedAt), rejected);
    state = State.CLOSED;
    probe = null;
  }

  private static long millis(long nanos) {
    return TimeUnit.NANOSECONDS.toMillis(nanos);
  }

  @Override
  public synchronized String toString() {
    return "CircuitBreaker[" + backend + " " + state + "]";
  }
}
