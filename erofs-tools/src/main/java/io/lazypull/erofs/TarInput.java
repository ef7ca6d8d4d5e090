package io.lazypull.erofs;

import com.github.luben.zstd.ZstdInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.GZIPInputStream;

/**
 * Turns a tar source (a file or a stream; plain, gzip or zstd, recognized by magic bytes) into
 * an uncompressed tar file that can be read at random offsets, as tar-index images and the
 * writer's second pass need. A plain tar file is used in place.
 */
final class TarInput {
  private static final int BUFFER = 1 << 20;

  private TarInput() {}

  /** An uncompressed tar on disk; {@code temporary} files belong to the caller to delete. */
  record SeekableTar(Path path, boolean temporary, PieceDigests.Result digests) {}

  /**
   * Materializes {@code source} (null = {@code stdin}) as an uncompressed tar. If
   * {@code pieceSize > 0} the tar's SHA-256 and piece digests are computed on the way.
   * Temporary output goes into {@code tempDir}.
   */
  static SeekableTar open(Path source, InputStream stdin, Path tempDir, int pieceSize)
      throws IOException {
    if (source != null) {
      String kind;
      try (InputStream in = Files.newInputStream(source)) {
        kind = sniff(in);
      }
      if (kind.equals("tar")) {
        PieceDigests.Result digests = pieceSize > 0 ? digestFile(source, pieceSize) : null;
        return new SeekableTar(source, false, digests);
      }
      try (InputStream in = Files.newInputStream(source)) {
        return decompress(in, tempDir, pieceSize);
      }
    }
    return decompress(stdin, tempDir, pieceSize);
  }

  private static SeekableTar decompress(InputStream raw, Path tempDir, int pieceSize) throws IOException {
    BufferedInputStream in = new BufferedInputStream(raw, BUFFER);
    in.mark(8);
    String kind = sniff(in);
    in.reset();
    InputStream tar = switch (kind) {
      case "gzip" -> new GZIPInputStream(in, BUFFER);
      case "zstd" -> new ZstdInputStream(in);
      default -> in;
    };
    Path tmp = Files.createTempFile(tempDir, ".lazypull-tar-", ".tmp");
    boolean ok = false;
    try (OutputStream out = Files.newOutputStream(tmp)) {
      PieceDigests digests = pieceSize > 0 ? new PieceDigests(pieceSize) : null;
      byte[] buf = new byte[BUFFER];
      for (int n; (n = tar.read(buf)) > 0; ) {
        out.write(buf, 0, n);
        if (digests != null) {
          digests.update(buf, 0, n);
        }
      }
      ok = true;
      return new SeekableTar(tmp, true, digests == null ? null : digests.finish());
    } finally {
      if (!ok) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  static PieceDigests.Result digestFile(Path file, int pieceSize) throws IOException {
    PieceDigests digests = new PieceDigests(pieceSize);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER);
      while (ch.read(buf.clear()) > 0) {
        digests.update(buf.flip());
      }
    }
    return digests.finish();
  }

  /** "gzip", "zstd" or "tar" (anything else is handed to the tar reader, which judges it). */
  private static String sniff(InputStream in) throws IOException {
    byte[] magic = in.readNBytes(4);
    if (magic.length >= 2 && (magic[0] & 0xff) == 0x1f && (magic[1] & 0xff) == 0x8b) {
      return "gzip";
    }
    if (magic.length == 4 && (magic[0] & 0xff) == 0x28 && (magic[1] & 0xff) == 0xb5
        && (magic[2] & 0xff) == 0x2f && (magic[3] & 0xff) == 0xfd) {
      return "zstd";
    }
    return "tar";
  }
}
