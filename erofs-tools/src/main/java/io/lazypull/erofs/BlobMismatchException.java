package io.lazypull.erofs;

import java.io.IOException;

/**
 * A data blob is not the one its image was built with: its size or the sha256 of one of its
 * pieces differs from the image's {@link BlobIndex}. The message names the blob and the piece,
 * e.g. "data blob /b/1f2e... (device 1): piece 3 [3145728, 4194304): sha256 9a0b..., the
 * image's blob index says 77c1...".
 */
public class BlobMismatchException extends IOException {
  private static final long serialVersionUID = 1L;

  public BlobMismatchException(String message) {
    super(message);
  }
}
