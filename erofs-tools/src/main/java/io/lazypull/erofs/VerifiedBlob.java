package io.lazypull.erofs;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A data blob read through its entry of the image's {@link BlobIndex}: each piece is read whole
 * and its sha256 checked before any of its bytes are handed out, so a different blob of the
 * same size, a damaged copy or a blob that changed gives a {@link BlobMismatchException}
 * naming the blob and the piece, never wrong file contents. The last verified pieces are kept
 * (up to {@link #CACHE_BYTES}, at least one), so reading the files of one piece one after
 * another hashes it once. Reads are serialized.
 */
final class VerifiedBlob implements ImageSource {
  static final long CACHE_BYTES = 16L << 20;

  private final ImageSource blob;
  private final BlobIndex.Blob index;
  private final String name;
  private final Map<Integer, byte[]> verified;

  private VerifiedBlob(ImageSource blob, BlobIndex.Blob index) {
    this.blob = blob;
    this.index = index;
    this.name = "data blob " + blob + " (device " + index.deviceId() + ", " + index.tag() + ")";
    int keep = (int) Math.max(1, CACHE_BYTES / index.pieceSize());
    this.verified = new LinkedHashMap<>(16, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<Integer, byte[]> eldest) {
        return size() > keep;
      }
    };
  }

  /** Wraps {@code blob}; its size must be the indexed one. */
  static VerifiedBlob of(ImageSource blob, BlobIndex.Blob index) throws IOException {
    VerifiedBlob v = new VerifiedBlob(blob, index);
    long size = blob.size();
    if (size != index.blobSize()) {
      throw new BlobMismatchException(v.name + " has " + size + " bytes, the image's blob index says "
          + index.blobSize() + ": not the blob this image was built with");
    }
    return v;
  }

  @Override
  public long size() {
    return index.blobSize();
  }

  @Override
  public synchronized void read(long pos, ByteBuffer dst) throws IOException {
    if (pos < 0 || dst.remaining() > index.blobSize() - pos) {
      throw new EOFException(name + ": read of " + dst.remaining() + " bytes at " + pos
          + " past the end (" + index.blobSize() + " bytes)");
    }
    while (dst.hasRemaining()) {
      int piece = index.pieceOf(pos);
      byte[] bytes = piece(piece);
      int off = (int) (pos - index.pieceOffset(piece));
      int n = Math.min(dst.remaining(), bytes.length - off);
      dst.put(bytes, off, n);
      pos += n;
    }
  }

  /** The bytes of {@code piece}, verified. */
  private byte[] piece(int piece) throws IOException {
    byte[] bytes = verified.get(piece);
    if (bytes != null) {
      return bytes;
    }
    long offset = index.pieceOffset(piece);
    bytes = new byte[index.pieceLength(piece)];
    try {
      blob.read(offset, ByteBuffer.wrap(bytes));
    } catch (EOFException e) {
      throw new BlobMismatchException(name + ": piece " + piece + " ends early (" + e.getMessage() + ")");
    }
    MessageDigest sha = PieceDigests.sha256();
    byte[] got = sha.digest(bytes);
    byte[] want = index.digests().get(piece);
    if (!Arrays.equals(got, want)) {
      throw new BlobMismatchException(name + ": piece " + piece + " [" + offset + ", " + (offset + bytes.length)
          + ") has sha256 " + HexFormat.of().formatHex(got) + ", the image's blob index says "
          + HexFormat.of().formatHex(want) + ": not the blob this image was built with");
    }
    verified.put(piece, bytes);
    return bytes;
  }

  @Override
  public void close() throws IOException {
    blob.close();
  }

  @Override
  public String toString() {
    return blob.toString();
  }
}
