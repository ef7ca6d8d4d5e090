package io.lazypull.backend;

import java.nio.ByteBuffer;

/** Checks fetched bytes against a digest; bytes that fail are wiped before anyone sees them. */
final class Verification {
  private Verification() {}

  /**
   * Checks the {@code n} bytes written into {@code dst} from {@code start} against
   * {@code expectedHex}. On a mismatch zeroes them, rewinds {@code dst} to {@code start} and
   * throws PERMANENT. {@code n == -1} (past the end) has no bytes to check.
   */
  static void checkRange(String backend, String hex, long offset, ByteBuffer dst, int start, int n,
      String expectedHex) throws BackendException {
    if (n < 0) {
      return;
    }
    ByteBuffer got = dst.duplicate();
    got.position(start).limit(start + n);
    String actual = Digests.sha256Hex(got);
    if (actual.equals(expectedHex)) {
      return;
    }
    for (int i = start; i < start + n; i++) {
      dst.put(i, (byte) 0);
    }
    dst.position(start);
    throw mismatch(backend, "read", hex, offset, offset + n, expectedHex, actual);
  }

  static BackendException mismatch(String backend, String operation, String hex, long from,
      long to, String expectedHex, String actualHex) {
    String range = "[" + from + "," + to + ")";
    return new BackendException(BackendException.Kind.PERMANENT, backend, operation + " " + range,
        hex, 0, "sha256 mismatch for " + Digests.SHA256_PREFIX + hex + " " + range
            + ": expected " + expectedHex + ", got " + actualHex, null);
  }
}
