package io.lazypull.shim.ondemand;

import io.lazypull.protocol.Opcode;
import io.lazypull.sys.Errno;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;

/**
 * A request in the pending table (the kernel's {@code cachefiles_req}): queued by a FUSE
 * thread, delivered to the daemon, completed exactly once ({@code copen}, CREAD, delivery of a
 * CLOSE, or an error), which wakes the thread waiting on it.
 */
public final class PendingRequest {
  final Opcode opcode;
  final CacheObject object;
  final long offset;
  final long length;
  /** An OPEN queued by a READ on a CLOSE object (rather than by a lookup). */
  final boolean reopen;

  /** The msg_id, as an unsigned 32-bit value; -1 until queued. */
  long msgId = -1;
  /** The anon socket made when this OPEN was last delivered, or null. */
  Anon anon;

  private final AtomicBoolean completed = new AtomicBoolean();
  private final CountDownLatch done = new CountDownLatch(1);
  private volatile int result;

  PendingRequest(Opcode opcode, CacheObject object, long offset, long length, boolean reopen) {
    this.opcode = opcode;
    this.object = object;
    this.offset = offset;
    this.length = length;
    this.reopen = reopen;
  }

  public Opcode opcode() {
    return opcode;
  }

  public CacheObject object() {
    return object;
  }

  /** The msg_id (wraps to a negative int above INT_MAX, as on the wire). */
  public int msgId() {
    return (int) msgId;
  }

  public long offset() {
    return offset;
  }

  public long length() {
    return length;
  }

  /** Completes the request once; later calls are ignored. */
  void complete(int result) {
    if (completed.compareAndSet(false, true)) {
      this.result = result;
      done.countDown();
    }
  }

  public boolean isDone() {
    return done.getCount() == 0;
  }

  /** The result once done: 0, or -errno. */
  public int result() {
    return result;
  }

  /**
   * Waits until the request is completed and returns its result (0 or -errno), or -ETIMEDOUT
   * once {@code deadlineNanos} ({@link System#nanoTime()}) has passed; the request is then
   * still queued (see {@link OndemandCache#abandon}). The kernel has no such deadline; the shim
   * has one so that a reader cannot wait forever on a daemon that never answers (none
   * connected, or a hung one). {@code logEveryMillis} only paces "still waiting" lines. An
   * interrupt returns -EINTR (the request stays queued).
   */
  public int await(Logger log, long logEveryMillis, long deadlineNanos) {
    long start = System.nanoTime();
    long nextLog = start + TimeUnit.MILLISECONDS.toNanos(logEveryMillis);
    try {
      while (true) {
        long now = System.nanoTime();
        if (now - deadlineNanos >= 0) {
          return done.getCount() == 0 ? result : -Errno.ETIMEDOUT;
        }
        long until = Math.min(nextLog, deadlineNanos);
        if (done.await(Math.max(0, until - now), TimeUnit.NANOSECONDS)) {
          return result;
        }
        if (System.nanoTime() - nextLog >= 0) {
          log.info("still waiting after {} s for {}", TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start), this);
          nextLog += TimeUnit.MILLISECONDS.toNanos(logEveryMillis);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -Errno.EINTR;
    }
  }

  @Override
  public String toString() {
    StringBuilder b = new StringBuilder().append(opcode).append(" msg ")
        .append(msgId < 0 ? "?" : Long.toString(msgId)).append(" (").append(object.describe());
    if (opcode == Opcode.READ) {
      b.append(" [").append(offset).append(", ").append(offset + length).append(")");
    }
    if (reopen) {
      b.append(", re-open");
    }
    return b.append(")").toString();
  }
}
