package io.lazypull.sys;

import java.io.IOException;

/** A failed system call: the call's name, its errno and the kernel's message for it. */
public final class ErrnoException extends IOException {
  private static final long serialVersionUID = 1L;

  private final String call;
  private final int errno;

  public ErrnoException(String call, int errno) {
    this(call, errno, null);
  }

  /** {@code detail}, if not null, names what the call was applied to (a path, an fd). */
  public ErrnoException(String call, int errno, String detail) {
    super(call + (detail == null ? "" : "(" + detail + ")") + ": " + Errno.describe(errno));
    this.call = call;
    this.errno = errno;
  }

  public String call() {
    return call;
  }

  /** The positive errno value. */
  public int errno() {
    return errno;
  }
}
