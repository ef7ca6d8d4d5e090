package io.lazypull.backend;

import java.io.Closeable;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Aborts attempts that make no progress for the read timeout, or that are still running when
 * their operation's deadline passes. HTTP clients time out while waiting for response headers,
 * but a body that stalls half way would block a reader forever (java.net.http has no read
 * timeout); this catches both, for every remote store alike.
 *
 * <p>One daemon thread per backend; each attempt holds one scheduled check that re-arms itself
 * while progress is being made.
 */
final class Watchdog implements Closeable {
  private final long timeoutNanos;
  private final ScheduledExecutorService timer;

  Watchdog(Duration timeout, String name) {
    this.timeoutNanos = timeout.toNanos();
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "lazypull-watchdog " + name);
      t.setDaemon(true);
      return t;
    });
  }

  /** Starts watching a new attempt with no deadline but the read timeout. */
  Call begin() {
    return begin(Long.MAX_VALUE);
  }

  /**
   * Starts watching a new attempt that is also aborted once {@code leftNanos} have passed
   * (what is left of its operation's time; {@code Long.MAX_VALUE}: no such bound).
   */
  Call begin(long leftNanos) {
    Call call = new Call();
    long now = System.nanoTime();
    long deadline = leftNanos == Long.MAX_VALUE ? Long.MAX_VALUE : now + Math.max(0, leftNanos);
    arm(call, deadline, Math.min(timeoutNanos, deadline == Long.MAX_VALUE ? Long.MAX_VALUE : deadline - now));
    return call;
  }

  private void arm(Call call, long deadline, long delayNanos) {
    try {
      call.check = timer.schedule(() -> check(call, deadline), Math.max(0, delayNanos), TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException closed) {
      // The backend is closing; the attempt fails on its own.
    }
  }

  private void check(Call call, long deadline) {
    if (call.done()) {
      return;
    }
    long now = System.nanoTime();
    long idle = now - call.lastProgressNanos();
    long left = deadline == Long.MAX_VALUE ? Long.MAX_VALUE : deadline - now;
    if (left <= 0) {
      call.abort(true);
    } else if (idle >= timeoutNanos) {
      call.abort(false);
    } else {
      arm(call, deadline, Math.min(timeoutNanos - idle, left));
    }
  }

  @Override
  public void close() {
    timer.shutdownNow();
  }
}
