package io.lazypull.erofs;

import java.io.Closeable;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;

/**
 * Writes an image front to back and computes its SHA-256 (the fsid) on the way, on a second
 * thread so hashing overlaps reading and writing. Zero runs are skipped in the file (it stays
 * sparse) but hashed. At most {@link #IN_FLIGHT} bytes wait for the hasher.
 */
final class HashingOutput implements Closeable {
  private static final int IN_FLIGHT = 16 << 20;
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

  private final FileChannel out;
  private final MessageDigest sha = PieceDigests.sha256();
  private final ExecutorService hasher = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "lazypull-fsid-hasher");
    t.setDaemon(true);
    return t;
  });
  private final Semaphore budget = new Semaphore(IN_FLIGHT);
  private Future<?> last;
  private long position;

  HashingOutput(FileChannel out) {
    this.out = out;
  }

  long position() {
    return position;
  }

  /** Appends the buffer's remaining bytes. */
  void write(ByteBuffer src) throws IOException {
    int len = src.remaining();
    ByteBuffer copy = ByteBuffer.allocate(len).put(src.duplicate()).flip();
    ImageWriter.writeFully(out, src, position);
    position += len;
    int permits = Math.min(len, IN_FLIGHT);
    acquire(permits);
    last = hasher.submit(() -> {
      sha.update(copy);
      budget.release(permits);
    });
  }

  /** Appends {@code length} zero bytes as a hole. */
  void skip(long length) {
    position += length;
    last = hasher.submit(() -> {
      for (long left = length; left > 0; ) {
        int n = (int) Math.min(left, ZEROS.capacity());
        sha.update(ZEROS.duplicate().limit(n));
        left -= n;
      }
    });
  }

  /** Pads with zeros up to {@code end}. */
  void skipTo(long end) {
    if (end < position) {
      throw new IllegalStateException("output is at " + position + ", past " + end);
    }
    skip(end - position);
  }

  /** Makes the file exactly {@link #position()} long and returns the SHA-256 hex of it all. */
  String finish() throws IOException {
    if (out.size() < position) {
      // The file ends in a hole: write its last (zero, already hashed) byte to set the length.
      ImageWriter.writeFully(out, ByteBuffer.allocate(1), position - 1);
    }
    try {
      if (last != null) {
        last.get();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while hashing the image");
    } catch (ExecutionException e) {
      throw new IOException("hashing the image failed", e.getCause());
    }
    return HexFormat.of().formatHex(sha.digest());
  }

  private void acquire(int permits) throws InterruptedIOException {
    try {
      budget.acquire(permits);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while writing the image");
    }
  }

  @Override
  public void close() {
    hasher.shutdownNow();
  }
}
