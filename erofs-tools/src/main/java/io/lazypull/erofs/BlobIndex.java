package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32C;

/**
 * The lazypull blob index: SHA-256 digests of fixed-size pieces of each data blob, appended to
 * a meta blob after the EROFS image proper (which is exactly superblock blocks * block size
 * bytes; the kernel and fsck.erofs ignore what follows). The daemon verifies every range it
 * fetches from a backend against it before the kernel sees the bytes.
 *
 * <pre>
 * [EROFS image: blocks * B bytes]
 * [zero padding, so that the whole file is a multiple of B]
 * [body: for each extra device, in device-table order:
 *     u32 pieceSizeLog2 | u64 blobSize | u32 pieceCount | pieceCount * 32 bytes SHA-256 ]
 * [footer, the last 32 bytes of the file:
 *     0-7 magic "LZPBIDX1" | 8-15 u64 bodyOffset | 16-23 u64 bodyLength
 *     | 24-27 u32 CRC32C(body) (standard, as java.util.zip.CRC32C) | 28-31 u32 0 ]
 * </pre>
 *
 * All integers are little-endian. Piece i covers blob bytes [i * pieceSize, min((i+1) *
 * pieceSize, blobSize)); the piece size is mkfs's (16 KiB by default, independent of the chunk
 * size; images made before that have 1 MiB or chunk-sized pieces, read the same). The image's fsid is the SHA-256 of the whole file, trailer included, so
 * the index is covered by the name the image is fetched by.
 *
 * <p>The padding keeps "flat" mounts working: the device slot's uniaddr is the meta blob's
 * whole length in blocks, so {@code cat meta blob > flat} mounts without {@code device=}
 * (the kernel then reads device 1 at uniaddr in the primary). Without it the kernel would
 * read the trailer as blob data.
 */
public final class BlobIndex {
  public static final byte[] MAGIC = "LZPBIDX1".getBytes(StandardCharsets.US_ASCII);
  public static final int FOOTER_SIZE = 32;
  private static final int DIGEST = 32;
  private static final int ENTRY_HEAD = 16;

  private BlobIndex() {}

  /**
   * The digests of one data blob.
   *
   * @param deviceId the device id chunk indexes use (1 = first extra device)
   * @param tag the device table tag (the blob's SHA-256 hex for lazypull images)
   */
  public record Blob(int deviceId, String tag, long blobSize, int pieceSize, List<byte[]> digests) {
    public int pieceCount() {
      return digests.size();
    }

    /** The index of the piece holding blob byte {@code offset}. */
    public int pieceOf(long offset) {
      return (int) (offset / pieceSize);
    }

    public long pieceOffset(int piece) {
      return (long) piece * pieceSize;
    }

    public int pieceLength(int piece) {
      return (int) Math.min(pieceSize, blobSize - pieceOffset(piece));
    }

    /**
     * {@code blob} read so that every piece is checked against these digests before any of its
     * bytes are handed out.
     *
     * @throws BlobMismatchException if its size is not {@link #blobSize()}; its reads throw it
     *     for a piece that does not match
     */
    public ImageSource verified(ImageSource blob) throws IOException {
      return VerifiedBlob.of(blob, this);
    }
  }

  /**
   * The data blobs of an image, each read through {@link Blob#verified}: pass these to
   * {@link ErofsImage#open} and no file content comes from a blob the image was not built with.
   * Returns {@code blobs} unchanged when the meta blob has no index (an image lazypull did not
   * build) or when their number does not match (then {@link ErofsImage#open} says so).
   *
   * @param blobs the image's extra devices, in device-table order
   * @throws BlobMismatchException if a blob's size is not the indexed one
   */
  public static List<ImageSource> verifying(ImageSource meta, List<ImageSource> blobs) throws IOException {
    Optional<List<Blob>> index = read(meta);
    if (index.isEmpty() || index.get().size() != blobs.size()) {
      return blobs;
    }
    List<ImageSource> out = new ArrayList<>();
    for (int i = 0; i < blobs.size(); i++) {
      out.add(index.get().get(i).verified(blobs.get(i)));
    }
    return out;
  }

  /**
   * Reads the index of a meta blob: empty if the file has no trailer.
   *
   * @throws CorruptImageException if a trailer is present but malformed or disagrees with the
   *     image's device table
   */
  public static Optional<List<Blob>> read(ImageSource meta) throws IOException {
    long size = meta.size();
    if (size < FOOTER_SIZE) {
      return Optional.empty();
    }
    ByteBuffer footer = Erofs.le(ByteBuffer.allocate(FOOTER_SIZE));
    meta.read(size - FOOTER_SIZE, footer);
    footer.flip();
    byte[] magic = new byte[MAGIC.length];
    footer.get(0, magic);
    if (!java.util.Arrays.equals(magic, MAGIC)) {
      return Optional.empty();
    }
    long bodyOffset = footer.getLong(8);
    long bodyLength = footer.getLong(16);
    int crc = footer.getInt(24);
    ErofsImage image = ErofsImage.open(meta, List.of());
    if (bodyOffset < image.erofsBytes() || bodyLength < 0
        || bodyOffset + bodyLength + FOOTER_SIZE != size || bodyLength > Integer.MAX_VALUE - 8) {
      throw new CorruptImageException("blob index: body at " + bodyOffset + " of " + bodyLength
          + " bytes does not fit between the image (" + image.erofsBytes() + " bytes) and the footer"
          + " (file " + size + " bytes)");
    }
    ByteBuffer body = Erofs.le(ByteBuffer.allocate((int) bodyLength));
    meta.read(bodyOffset, body);
    body.flip();
    CRC32C c = new CRC32C();
    c.update(body.duplicate());
    if ((int) c.getValue() != crc) {
      throw new CorruptImageException(String.format("blob index: bad CRC32C 0x%08x (computed 0x%08x)",
          crc, (int) c.getValue()));
    }
    List<Blob> blobs = new ArrayList<>();
    for (ErofsImage.Device d : image.devices()) {
      String where = "blob index: device " + d.id();
      if (body.remaining() < ENTRY_HEAD) {
        throw new CorruptImageException(where + ": body ends early");
      }
      int log2 = body.getInt();
      long blobSize = body.getLong();
      long count = body.getInt() & 0xFFFFFFFFL;
      if (log2 < 9 || log2 > 30 || blobSize < 0) {
        throw new CorruptImageException(where + ": piece size 2^" + log2 + ", blob size " + blobSize);
      }
      long expected = (blobSize + (1L << log2) - 1) >>> log2;
      if (count != expected || count * DIGEST > body.remaining()) {
        throw new CorruptImageException(where + ": " + count + " pieces for a blob of " + blobSize
            + " bytes in pieces of " + (1 << log2));
      }
      List<byte[]> digests = new ArrayList<>((int) count);
      for (long i = 0; i < count; i++) {
        byte[] dg = new byte[DIGEST];
        body.get(dg);
        digests.add(dg);
      }
      blobs.add(new Blob(d.id(), d.tag(), blobSize, 1 << log2, Collections.unmodifiableList(digests)));
    }
    if (body.hasRemaining()) {
      throw new CorruptImageException("blob index: " + body.remaining() + " bytes after the last device");
    }
    return Optional.of(List.copyOf(blobs));
  }

  private static int bodyLength(List<PieceDigests.Result> blobs) {
    int length = 0;
    for (PieceDigests.Result r : blobs) {
      length += ENTRY_HEAD + DIGEST * r.pieceDigests().size();
    }
    return length;
  }

  /** The meta blob's total size once the index is appended after {@code erofsBytes}. */
  static long fileSize(long erofsBytes, List<PieceDigests.Result> blobs, int blockSize) {
    return Erofs.roundUp(erofsBytes + bodyLength(blobs) + FOOTER_SIZE, blockSize);
  }

  /** Appends padding, body and footer after {@code erofsBytes}; returns the file size. */
  static long write(HashingOutput out, long erofsBytes, List<PieceDigests.Result> blobs, int blockSize)
      throws IOException {
    int bodyLength = bodyLength(blobs);
    long fileSize = fileSize(erofsBytes, blobs, blockSize);
    long bodyOffset = fileSize - FOOTER_SIZE - bodyLength;
    ByteBuffer body = Erofs.le(ByteBuffer.allocate(bodyLength));
    for (PieceDigests.Result r : blobs) {
      body.putInt(Integer.numberOfTrailingZeros(r.pieceSize()));
      body.putLong(r.size());
      body.putInt(r.pieceDigests().size());
      for (byte[] d : r.pieceDigests()) {
        body.put(d);
      }
    }
    body.flip();
    CRC32C c = new CRC32C();
    c.update(body.duplicate());
    ByteBuffer footer = Erofs.le(ByteBuffer.allocate(FOOTER_SIZE));
    footer.put(MAGIC).putLong(bodyOffset).putLong(bodyLength).putInt((int) c.getValue()).putInt(0);
    out.skipTo(bodyOffset);
    out.write(body);
    out.write(footer.flip());
    return fileSize;
  }
}
