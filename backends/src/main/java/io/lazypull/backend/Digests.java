package io.lazypull.backend;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Blob names. A blob is named by the sha256 of its bytes, written as 64 lowercase hex
 * characters. At the edges (CLI arguments, OCI manifests) the form {@code sha256:<hex>} is
 * accepted too; {@link #normalize} turns either into the bare hex that the rest of lazypull uses.
 */
public final class Digests {
  /** The prefix of an OCI digest string. */
  public static final String SHA256_PREFIX = "sha256:";

  private static final int HEX_LENGTH = 64;

  private Digests() {}

  /**
   * Returns the bare lowercase hex of a sha256 digest given as {@code <hex>} or
   * {@code sha256:<hex>}.
   *
   * @throws IllegalArgumentException if it is anything else (another algorithm, uppercase,
   *     wrong length, stray characters)
   */
  public static String normalize(String digest) {
    if (digest == null) {
      throw new IllegalArgumentException("blob digest is missing");
    }
    String hex = digest.startsWith(SHA256_PREFIX) ? digest.substring(SHA256_PREFIX.length()) : digest;
    if (!isHex(hex)) {
      String shown = digest.length() > 80 ? digest.substring(0, 80) + "..." : digest;
      throw new IllegalArgumentException("not a sha256 digest: '" + shown
          + "' (want 64 lowercase hex characters, optionally prefixed with 'sha256:')");
    }
    return hex;
  }

  /** True if {@code s} is exactly 64 lowercase hex characters. */
  public static boolean isHex(String s) {
    if (s == null || s.length() != HEX_LENGTH) {
      return false;
    }
    for (int i = 0; i < HEX_LENGTH; i++) {
      char c = s.charAt(i);
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
        return false;
      }
    }
    return true;
  }

  /** The sha256 hex of a whole file, read with one 1 MiB buffer. */
  public static String sha256Hex(Path file) throws IOException {
    MessageDigest md = newSha256();
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (ch.read(buf) >= 0) {
        buf.flip();
        md.update(buf);
        buf.clear();
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /** The sha256 hex of the bytes between position and limit; the buffer's position is unchanged. */
  public static String sha256Hex(ByteBuffer bytes) {
    MessageDigest md = newSha256();
    md.update(bytes.duplicate());
    return HexFormat.of().formatHex(md.digest());
  }

  static MessageDigest newSha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("every Java platform has SHA-256", e);
    }
  }

  static String hex(MessageDigest md) {
    return HexFormat.of().formatHex(md.digest());
  }
}
