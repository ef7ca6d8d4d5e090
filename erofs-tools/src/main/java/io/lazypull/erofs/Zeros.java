package io.lazypull.erofs;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** All-zero detection, so zero chunks become holes and zero blocks are not written. */
final class Zeros {
  private Zeros() {}

  static boolean isAllZero(ByteBuffer b) {
    ByteBuffer d = b.duplicate().order(ByteOrder.nativeOrder());
    while (d.remaining() >= 8) {
      if (d.getLong() != 0) {
        return false;
      }
    }
    while (d.hasRemaining()) {
      if (d.get() != 0) {
        return false;
      }
    }
    return true;
  }
}
