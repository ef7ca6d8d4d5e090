package io.lazypull.daemon;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Where the daemon gets the bytes of a blob: one backend (S3, a registry, a local directory),
 * seen through the only two operations the request path needs. Blobs are immutable and named
 * by their sha256 hex digest.
 */
public interface BlobSource {
  /** The blob's size in bytes. */
  long size(String digest) throws IOException;

  /**
   * Fills {@code dst} (position to limit) with the blob's bytes starting at {@code offset}.
   * Throws rather than returning fewer bytes.
   */
  void readFully(String digest, long offset, ByteBuffer dst) throws IOException;

  /**
   * Writes the blob's bytes [{@code offset}, {@code offset + length}) into {@code target}, in
   * order, as one request where {@link #remote()}. Throws rather than writing fewer bytes. By
   * default in reads of up to 1 MiB.
   */
  default void transferRange(String digest, long offset, long length, java.nio.channels.WritableByteChannel target)
      throws IOException {
    ByteBuffer buf = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
    for (long off = offset; off < offset + length; ) {
      buf.clear().limit((int) Math.min(buf.capacity(), offset + length - off));
      readFully(digest, off, buf);
      buf.flip();
      off += buf.remaining();
      while (buf.hasRemaining()) {
        target.write(buf);
      }
    }
  }

  /**
   * Whether each request crosses a network: a window of several pieces is then asked for in
   * one request ({@link #transferRange}) and taken a piece at a time; else piece by piece.
   */
  default boolean remote() {
    return false;
  }

  /**
   * Streams the whole blob into {@code target}, in order, as one transfer where the backend
   * can (background prefetch: one request instead of one per window). By default {@link
   * #transferRange} of all of it.
   */
  default void transferTo(String digest, long size, java.nio.channels.WritableByteChannel target)
      throws IOException {
    transferRange(digest, 0, size, target);
  }

  /** True if the failure means the blob does not exist (answered with ENOENT, not EIO). */
  default boolean isNotFound(IOException e) {
    return false;
  }

  /**
   * True if the failure says the backend is not answering (a timeout, a refused or reset
   * connection, 5xx after the retries) rather than anything about the blob or its bytes: the
   * daemon then fails the requests that need this backend at once, until a probe gets an
   * answer. Sources that cannot tell answer false.
   */
  default boolean isUnavailable(IOException e) {
    return false;
  }

  /** Where the bytes come from, for logs; never contains a secret. */
  String describe();
}
