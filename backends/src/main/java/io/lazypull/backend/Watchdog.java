package io.lazypull.backend;

import java.io.Closeable;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Aborts attempts that make no progress for the read timeout. HTTP clients time out while
 * waiting for response headers, but a body that stalls half way would block a reader forever
 * (java.net.http has no read timeout); this catches both, for every remote store alike.
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

  /** Starts watching a new attempt. */
  Call begin() {
    Call call = new Call();
    arm(call, timeoutNanos);
    return call;
  }

  private void arm(Call call, long delayNanos) {
    try {
      call.check = timer.schedule(() -> check(call), delayNanos, TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException closed) {
      // The backend is closing; the attempt fails on its own.
    }
  }

  private void check(Call call) {
    if (call.done()) {
      return;
    }
    long idle = System.nanoTime() - call.lastProgressNanos();
    if (idle >= timeoutNanos) {
      call.abort();
    } else {
      arm(call, timeoutNanos - idle);
    }
  }

  @Override
  public void close() {
    timer.shutdownNow();
  }
}
