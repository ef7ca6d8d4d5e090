package io.lazypull.erofs;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Where a regular file's bytes come from: a file of a directory source, a member of a tar.
 * Contents are streamed, never held in memory.
 */
interface FileContent {
  /** Opens a sequential reader positioned at byte 0. */
  Reader open() throws IOException;

  /** A sequential reader that may know where holes are, so huge sparse files stay cheap. */
  interface Reader extends Closeable {
    /**
     * Reads up to {@code dst.remaining()} bytes at the current position (fewer only at EOF) and
     * advances. Returns the byte count, or -1 at EOF.
     */
    int read(ByteBuffer dst) throws IOException;

    /**
     * If the next {@code length} bytes are known to be a hole (all zeros), skips them and
     * returns true; otherwise returns false and does not move. The default knows no holes.
     */
    default boolean skipHole(long length) throws IOException {
      return false;
    }

    /** Moves {@code length} bytes forward; the default reads and discards them. */
    default void skip(long length, String origin) throws IOException {
      ByteBuffer scratch = ByteBuffer.allocate((int) Math.min(length, 1 << 16));
      for (long left = length; left > 0; ) {
        scratch.clear().limit((int) Math.min(left, scratch.capacity()));
        readFully(scratch, origin);
        left -= scratch.position();
      }
    }

    /** Reads exactly {@code dst.remaining()} bytes or fails: the file shrank since the scan. */
    default void readFully(ByteBuffer dst, String origin) throws IOException {
      while (dst.hasRemaining()) {
        if (read(dst) < 0) {
          throw new IOException(origin + ": file shrank while building the image");
        }
      }
    }
  }
}
