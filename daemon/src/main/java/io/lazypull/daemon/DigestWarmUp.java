package io.lazypull.daemon;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Compiles the sha256 code before the first fetch needs it. Every fetched byte is hashed before
 * a reader may see it, and only the C2 compiler's code uses the CPU's SHA instructions: a new
 * JVM hashed its first MiB in 64-94 ms (interpreted, then compiled on the way), a warm one in
 * 1.5 ms. That first MiB is the first READ of a cold start, or of a daemon restarted under
 * waiting readers. Hashing a little on a thread of its own at start gets the compiles done while
 * the daemon is still connecting (they took 64-106 ms here), on the other core.
 */
final class DigestWarmUp {
  private static final Logger log = LoggerFactory.getLogger(DigestWarmUp.class);

  /** Enough calls and loop iterations for C2 (measured: 2 x 256 KiB did it; 1 x 64 KiB not). */
  private static final int BYTES = 256 << 10;
  private static final int ROUNDS = 3;

  private static final AtomicReference<Thread> started = new AtomicReference<>();

  private DigestWarmUp() {}

  /** Starts the warm-up once per JVM; returns its thread (for tests). */
  static Thread start() {
    Thread t = new Thread(DigestWarmUp::run, "sha256-warm-up");
    t.setDaemon(true);
    if (!started.compareAndSet(null, t)) {
      return started.get();
    }
    t.start();
    return t;
  }

  private static void run() {
    long t0 = System.nanoTime();
    // Direct, as the fetch buffers are: the same update path gets compiled.
    ByteBuffer zeros = ByteBuffer.allocateDirect(BYTES);
    for (int i = 0; i < ROUNDS; i++) {
      MessageDigest sha = PieceIndex.sha256();
      sha.update(zeros.duplicate());
      sha.digest();
    }
    log.debug("sha256 warm-up: {} x {} KiB hashed in {} ms", ROUNDS, BYTES >> 10,
        (System.nanoTime() - t0) / 1_000_000);
  }
}
