package io.lazypull.daemon;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * Page-aligned direct buffers for fetched data: the kernel writes into cache files with
 * O_DIRECT, which wants aligned memory, and reusing them keeps allocation off the hot path.
 * Buffers bigger than the pool's size are allocated for the one use.
 */
final class BufferPool {
  private final int size;
  private final ArrayBlockingQueue<ByteBuffer> free;

  BufferPool(int size, int count) {
    this.size = size;
    this.free = new ArrayBlockingQueue<>(count);
  }

  ByteBuffer acquire(int capacity) {
    ByteBuffer b = capacity <= size ? free.poll() : null;
    if (b == null) {
      b = allocate(Math.max(capacity, size));
    }
    return b.clear();
  }

  void release(ByteBuffer b) {
    if (b.capacity() == size) {
      free.offer(b);
    }
  }

  private static ByteBuffer allocate(int capacity) {
    return ByteBuffer.allocateDirect(capacity + DaemonConfig.PAGE).alignedSlice(DaemonConfig.PAGE)
        .limit(capacity).slice();
  }
}
