package io.lazypull.daemon;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The sha256 of every fixed-size piece of one blob (the last piece may be shorter): with it the
 * daemon verifies any fetched range before writing a byte into the cache. Meta blobs carry
 * these for their data blobs (erofs-tools' blob index).
 */
public final class PieceIndex {
  private static final int MAGIC = 0x4c5a5049; // "LZPI"

  private final long blobSize;
  private final int pieceSize;
  private final byte[] digests; // 32 bytes per piece

  public PieceIndex(long blobSize, int pieceSize, byte[] digests) {
    if (pieceSize < 4096 || Integer.bitCount(pieceSize) != 1) {
      throw new IllegalArgumentException("piece size must be a power of two >= 4096: " + pieceSize);
    }
    long pieces = pieceCount(blobSize, pieceSize);
    if (digests.length != pieces * 32) {
      throw new IllegalArgumentException("blob of " + blobSize + " bytes has " + pieces
          + " pieces of " + pieceSize + ", got " + digests.length / 32 + " digests");
    }
    this.blobSize = blobSize;
    this.pieceSize = pieceSize;
    this.digests = digests.clone();
  }

  static long pieceCount(long blobSize, int pieceSize) {
    return (blobSize + pieceSize - 1) / pieceSize;
  }

  public long blobSize() {
    return blobSize;
  }

  public int pieceSize() {
    return pieceSize;
  }

  /**
   * Checks {@code data} (position to limit), which holds the blob's bytes from {@code offset}
   * (a piece boundary) through whole pieces, or to the blob's end.
   *
   * @throws IntegrityException naming the first piece that does not match
   */
  public void verify(String blob, long offset, ByteBuffer data) throws IntegrityException {
    if (offset % pieceSize != 0) {
      throw new IllegalArgumentException("offset " + offset + " is not a piece boundary");
    }
    MessageDigest sha = sha256();
    ByteBuffer d = data.duplicate();
    long pos = offset;
    while (d.hasRemaining()) {
      long piece = pos / pieceSize;
      int len = (int) Math.min(pieceSize, blobSize - pos);
      if (len <= 0 || d.remaining() < len) {
        throw new IllegalArgumentException("range [" + offset + ", +" + data.remaining()
            + ") does not end at a piece boundary or the blob's end (" + blobSize + ")");
      }
      ByteBuffer slice = d.slice().limit(len);
      sha.update(slice);
      byte[] got = sha.digest();
      if (!Arrays.equals(got, 0, 32, digests, (int) (piece * 32), (int) (piece * 32 + 32))) {
        throw new IntegrityException("sha256 mismatch for blob " + blob + " piece " + piece + " ["
            + pos + ", " + (pos + len) + "): expected "
            + HexFormat.of().formatHex(digests, (int) (piece * 32), (int) (piece * 32 + 32))
            + ", got " + HexFormat.of().formatHex(got));
      }
      d.position(d.position() + len);
      pos += len;
    }
  }

  /** Bytes fetched from the backend that do not match their known digest. */
  public static final class IntegrityException extends IOException {
    private static final long serialVersionUID = 1L;

    public IntegrityException(String message) {
      super(message);
    }
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  byte[] toBytes() {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream(24 + digests.length);
      DataOutputStream out = new DataOutputStream(bytes);
      out.writeInt(MAGIC);
      out.writeLong(blobSize);
      out.writeInt(pieceSize);
      out.write(digests);
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  static PieceIndex fromBytes(InputStream in) throws IOException {
    DataInputStream d = new DataInputStream(in);
    if (d.readInt() != MAGIC) {
      throw new IOException("not a piece index");
    }
    long size = d.readLong();
    int piece = d.readInt();
    if (size < 0 || piece < 4096 || Integer.bitCount(piece) != 1 || pieceCount(size, piece) > (1 << 26)) {
      throw new IOException("corrupt piece index: size " + size + " piece " + piece);
    }
    byte[] digests = d.readNBytes((int) (pieceCount(size, piece) * 32));
    if (d.read() != -1) {
      throw new IOException("corrupt piece index: trailing bytes");
    }
    return new PieceIndex(size, piece, digests);
  }

  @Override
  public String toString() {
    return "PieceIndex{blobSize=" + blobSize + ", pieceSize=" + pieceSize + ", pieces="
        + pieceCount(blobSize, pieceSize) + "}";
  }
}
