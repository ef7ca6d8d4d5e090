package io.lazypull.cli;

import java.io.IOException;

/**
 * An image's meta blob could not be read through the front end, or is not an EROFS image.
 * Through a front end a blob the daemon cannot fetch or verify reads as EIO, whatever the
 * cause: 'up', which knows the backend, asks it directly to say what is wrong
 * ({@link MetaBlobs#diagnose}).
 */
final class MetaBlobException extends IOException {
  private static final long serialVersionUID = 1L;
  static final String DAEMON_HINT = "the daemon could not fetch it or it failed verification (its log says which)";

  final String fsid;

  MetaBlobException(String fsid, String message, Throwable cause) {
    super(message, cause);
    this.fsid = fsid;
  }

  /** True if the blob could not be read at all (EIO): the reason is the daemon's to know. */
  boolean unreadable() {
    return !(getCause() instanceof io.lazypull.erofs.CorruptImageException);
  }
}
