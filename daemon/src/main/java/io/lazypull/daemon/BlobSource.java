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
