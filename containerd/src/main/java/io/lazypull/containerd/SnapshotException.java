package io.lazypull.containerd;

import java.io.IOException;

/** A snapshot operation refused for a reason containerd knows (its errdefs, as gRPC codes). */
final class SnapshotException extends IOException {
  private static final long serialVersionUID = 1L;

  enum Code { NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT }

  final Code code;

  SnapshotException(Code code, String message) {
    super(message);
    this.code = code;
  }

  static SnapshotException notFound(String m) {
    return new SnapshotException(Code.NOT_FOUND, m);
  }

  static SnapshotException exists(String m) {
    return new SnapshotException(Code.ALREADY_EXISTS, m);
  }

  static SnapshotException precondition(String m) {
    return new SnapshotException(Code.FAILED_PRECONDITION, m);
  }

  static SnapshotException invalid(String m) {
    return new SnapshotException(Code.INVALID_ARGUMENT, m);
  }
}
