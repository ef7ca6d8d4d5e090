package io.lazypull.erofs.oci;

import com.github.luben.zstd.ZstdInputStream;
import io.lazypull.backend.Digests;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.GZIPInputStream;

/*
 * One source layer, already fetched and checked against its digest, to a meta blob and a data
 * blob with lazypull's mkfs:
 *
 *   uncompressed tar   -> tar-index; the tar itself is the data blob (hard-linked into blobs/),
 *                         its digest is the layer's digest, which must equal the diff ID
 *                         (or chunked, when asked, for mounts that need 4 KiB blocks)
 *   tar+gzip, tar+zstd -> decompressed into layer.tar while hashing (must equal the diff ID),
 *                         the compressed file deleted, then chunked; layer.tar deleted after
 *
 * Everything is written inside the layer's own directory; the caller removes it.
 */
final class LayerConverter {
  private static final int BUFFER = 1 << 20;

  private LayerConverter() {}

  /** What came out: the meta blob and the data blob files, and the layer's description. */
  record Output(Path meta, Path data, ConvertedLayer layer) {}

  /** {@code tarIndex} false: uncompressed layers are made chunked too (for fscache mounts). */
  static Output convert(Path blob, Descriptor layer, String diffId, Path dir, int chunkSize,
      boolean tarIndex) throws IOException {
    String type = layer.mediaType();
    String actual = sniff(blob);
    Path blobs = Files.createDirectories(dir.resolve("blobs"));
    Path meta = dir.resolve("meta");
    MkfsResult r;
    if (ImageFormat.UNCOMPRESSED_LAYERS.contains(type)) {
      if (!actual.equals("tar")) {
        throw new BadManifestException("layer " + layer.digest() + " is declared " + type
            + " (uncompressed) but its bytes are " + actual);
      }
      if (!layer.digest().equals(diffId)) {
        throw new BadManifestException("layer " + layer.digest() + " is uncompressed, so its diff ID"
            + " must be its digest, but the config says " + diffId);
      }
      r = tarIndex ? Mkfs.builder().layout(Layout.TAR_INDEX).blobDir(blobs).build().build(blob, meta)
          : Mkfs.builder().layout(Layout.CHUNKED).chunkSize(chunkSize).blobDir(blobs).build()
              .build(blob, meta);
      Files.delete(blob); // tar-index: the data blob is a hard link to it (or a copy)
    } else if (ImageFormat.COMPRESSED_LAYERS.containsKey(type)) {
      String expected = ImageFormat.COMPRESSED_LAYERS.get(type);
      if (!actual.equals(expected)) {
        throw new BadManifestException("layer " + layer.digest() + " is declared " + type
            + " but its bytes are " + actual);
      }
      Path tar = dir.resolve("layer.tar");
      String uncompressed = decompress(blob, expected, tar);
      Files.delete(blob);
      if (!uncompressed.equals(diffId)) {
        throw new BadManifestException("layer " + layer.digest() + " uncompresses to " + uncompressed
            + " but the config's diff ID is " + diffId);
      }
      r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(chunkSize).blobDir(blobs).build()
          .build(tar, meta);
      Files.delete(tar);
    } else {
      throw new BadManifestException("layer " + layer.digest() + " has media type " + type
          + ", which lazypull does not convert (it takes tar, tar+gzip and tar+zstd layers)");
    }
    MkfsResult.DataBlob data = r.dataBlob().orElseThrow(); // chunked and tar-index have one
    if (r.layout() == Layout.TAR_INDEX && !data.sha256Hex().equals(layer.hex())) {
      throw new IOException("layer " + layer.digest() + " changed on disk while it was converted");
    }
    ConvertedLayer converted = new ConvertedLayer(r.fsid(), r.imageBytes(), r.layout(),
        List.of(new ConvertedLayer.Blob(Digests.SHA256_PREFIX + data.sha256Hex(), data.size())),
        layer.digest(), diffId, type, layer.size());
    return new Output(meta, data.path(), converted);
  }

  /** Writes the uncompressed stream to {@code tar}; returns its sha256:hex. */
  private static String decompress(Path blob, String compression, Path tar) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
    try (InputStream raw = new BufferedInputStream(Files.newInputStream(blob), BUFFER);
        InputStream in = new DigestInputStream(compression.equals("gzip")
            ? new GZIPInputStream(raw, BUFFER) : new ZstdInputStream(raw), md);
        OutputStream out = Files.newOutputStream(tar)) {
      in.transferTo(out);
    } catch (java.util.zip.ZipException e) {
      throw new BadManifestException("layer " + blob.getFileName() + " is not valid " + compression
          + ": " + e.getMessage());
    }
    return Digests.SHA256_PREFIX + HexFormat.of().formatHex(md.digest());
  }

  static String sniff(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      return sniff(in.readNBytes(4));
    }
  }

  /** "gzip", "zstd" or "tar" by the first 4 bytes (anything else: mkfs's tar reader judges it). */
  static String sniff(byte[] m) {
    if (m.length >= 2 && (m[0] & 0xff) == 0x1f && (m[1] & 0xff) == 0x8b) {
      return "gzip";
    }
    if (m.length == 4 && (m[0] & 0xff) == 0x28 && (m[1] & 0xff) == 0xb5 && (m[2] & 0xff) == 0x2f
        && (m[3] & 0xff) == 0xfd) {
      return "zstd";
    }
    return "tar";
  }
}
