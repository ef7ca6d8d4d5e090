package io.lazypull.backend;

import java.io.Closeable;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ScheduledFuture;

/**
 * One attempt of one operation against a {@link Store}. The store reports progress (bytes
 * arrived) and registers how to abort what it has open (a response stream); the
 * {@link Watchdog} aborts the attempt when it has made no progress for the read timeout, or
 * when its operation's deadline passes, and the retry layer then sees {@link #timedOut()}.
 */
final class Call {
  private volatile long lastProgressNanos = System.nanoTime();
  private volatile boolean timedOut;
  private volatile boolean pastDeadline;
  private volatile boolean done;
  private final List<Closeable> aborts = new ArrayList<>(2); // guarded by this
  volatile ScheduledFuture<?> check;

  /** Bytes arrived: the attempt is alive. */
  void progress() {
    lastProgressNanos = System.nanoTime();
  }

  long lastProgressNanos() {
    return lastProgressNanos;
  }

  /** Registers something to close if the attempt times out; closes it now if it already has. */
  void onAbort(Closeable resource) {
    synchronized (this) {
      if (!timedOut) {
        aborts.add(resource);
        return;
      }
    }
    closeQuietly(resource);
  }

  /** True once the watchdog aborted this attempt. */
  boolean timedOut() {
    return timedOut;
  }

  /** True if the abort was for the operation's deadline rather than for no progress. */
  boolean pastDeadline() {
    return pastDeadline;
  }

  boolean done() {
    return done;
  }

  void finish() {
    done = true;
    ScheduledFuture<?> f = check;
    if (f != null) {
      f.cancel(false);
    }
  }

  /**
   * Marks the attempt timed out and closes what it registered (from the watchdog thread);
   * {@code deadline}: the operation's deadline passed (rather than the read timeout).
   */
  void abort(boolean deadline) {
    List<Closeable> toClose;
    synchronized (this) {
      if (done || timedOut) {
        return;
      }
      pastDeadline = deadline;
      timedOut = true;
      toClose = new ArrayList<>(aborts);
      aborts.clear();
    }
    toClose.forEach(Call::closeQuietly);
  }

  private static void closeQuietly(Closeable c) {
    try {
      c.close();
    } catch (IOException | RuntimeException ignored) {
      // Aborting: the attempt fails anyway and reports its own error.
    }
  }
}
