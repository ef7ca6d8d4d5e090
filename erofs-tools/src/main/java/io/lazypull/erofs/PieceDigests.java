package io.lazypull.erofs;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Streams a blob through SHA-256 twice over: once whole (the blob's name and device tag) and
 * once per fixed-size piece (the blob index the daemon verifies fetched ranges with).
 */
final class PieceDigests {
  private final int pieceSize;
  private final MessageDigest whole = sha256();
  private final MessageDigest piece = sha256();
  private final List<byte[]> pieces = new ArrayList<>();
  private long size;
  private int inPiece;

  PieceDigests(int pieceSize) {
    this.pieceSize = pieceSize;
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JRE", e);
    }
  }

  /** Consumes the buffer's remaining bytes. */
  void update(ByteBuffer src) {
    while (src.hasRemaining()) {
      int n = Math.min(src.remaining(), pieceSize - inPiece);
      ByteBuffer part = src.duplicate();
      part.limit(part.position() + n);
      whole.update(part.duplicate());
      piece.update(part);
      src.position(src.position() + n);
      inPiece += n;
      size += n;
      if (inPiece == pieceSize) {
        pieces.add(piece.digest());
        inPiece = 0;
      }
    }
  }

  void update(byte[] b, int off, int len) {
    update(ByteBuffer.wrap(b, off, len));
  }

  /** Counts {@code length} zero bytes without materializing them more than a block at a time. */
  void updateZeros(long length) {
    ByteBuffer zeros = ByteBuffer.allocate(64 * 1024);
    while (length > 0) {
      int n = (int) Math.min(zeros.capacity(), length);
      zeros.clear().limit(n);
      update(zeros);
      length -= n;
    }
  }

  long size() {
    return size;
  }

  /** Finishes: the whole digest as hex, and the piece digests (the last piece may be short). */
  Result finish() {
    if (inPiece > 0) {
      pieces.add(piece.digest());
      inPiece = 0;
    }
    return new Result(HexFormat.of().formatHex(whole.digest()), size, pieceSize, List.copyOf(pieces));
  }

  record Result(String sha256Hex, long size, int pieceSize, List<byte[]> pieceDigests) {}
}
