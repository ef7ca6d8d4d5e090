package io.lazypull.daemon;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Page-aligned direct buffers for fetched data: the kernel writes into cache files with
 * O_DIRECT, which wants aligned memory, and reusing them keeps allocation off the hot path.
 * Buffers come in power-of-two sizes from 64 KiB to the largest window, a few of each kept,
 * so that the many small fetches of random reads do not each hold (and touch: direct memory
 * is zeroed) a buffer of the largest window. Bigger requests get a buffer for the one use.
 */
final class BufferPool {
  private static final int MIN = 64 << 10;

  private final int max;
  private final int keep;
  private final ConcurrentHashMap<Integer, ArrayBlockingQueue<ByteBuffer>> free = new ConcurrentHashMap<>();

  /** Pools buffers up to {@code max} bytes, keeping at most {@code keep} free ones of each size. */
  BufferPool(int max, int keep) {
    this.max = max;
    this.keep = Math.max(1, keep);
  }

  ByteBuffer acquire(int capacity) {
    int size = sizeFor(capacity);
    if (size > max) {
      return allocate(capacity);
    }
    ByteBuffer b = free.computeIfAbsent(size, s -> new ArrayBlockingQueue<>(keep)).poll();
    return (b == null ? allocate(size) : b).clear();
  }

  void release(ByteBuffer b) {
    int size = b.capacity();
    if (size <= max && size == sizeFor(size)) {
      free.computeIfAbsent(size, s -> new ArrayBlockingQueue<>(keep)).offer(b);
    }
  }

  private static int sizeFor(int capacity) {
    if (capacity <= MIN) {
      return MIN;
    }
    int p = Integer.highestOneBit(capacity);
    return p == capacity || p >= (1 << 30) ? capacity : p << 1;
  }

  private static ByteBuffer allocate(int capacity) {
    return ByteBuffer.allocateDirect(capacity + DaemonConfig.PAGE).alignedSlice(DaemonConfig.PAGE)
        .limit(capacity).slice();
  }
}
