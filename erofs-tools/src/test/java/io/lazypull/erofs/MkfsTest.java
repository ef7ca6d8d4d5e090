package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reproducible output, chunk dedupe and holes, and the blob index trailer. */
class MkfsTest {
  @TempDir Path tmp;

  private Path tree() throws IOException {
    if (Files.exists(tmp.resolve("src"))) {
      return tmp.resolve("src");
    }
    Path src = Files.createDirectories(tmp.resolve("src/sub")).getParent();
    byte[] chunk = new byte[8192];
    new Random(5).nextBytes(chunk);
    try (FileChannel ch = FileChannel.open(src.resolve("twice"), StandardOpenOption.CREATE_NEW,
        StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(chunk), 0);       // chunk 0 and 1: random
      ch.write(ByteBuffer.wrap(chunk), 16384);   // chunk 2 and 3: the same bytes again
      ch.write(ByteBuffer.wrap(new byte[] {1}), 65536 + 4095); // chunks 4..7 zero, 8: 1 byte
    }
    Files.write(src.resolve("sub/copy"), chunk); // the same two chunks in another file
    Files.writeString(src.resolve("small"), "small");
    return src;
  }

  @Test
  void sameInput_sameBytes() throws IOException {
    Path src = tree();
    for (Layout layout : List.of(Layout.FULL, Layout.CHUNKED)) {
      Mkfs mkfs = Mkfs.builder().layout(layout).chunkSize(4096).build();
      MkfsResult a = mkfs.build(src, tmp.resolve("a-" + layout));
      MkfsResult b = mkfs.build(src, tmp.resolve("b-" + layout));
      assertThat(Files.mismatch(a.image(), b.image())).as(layout.cliName()).isEqualTo(-1);
      assertThat(a.fsid()).isEqualTo(b.fsid()).isEqualTo(sha256(a.image()));
    }
  }

  @Test
  void chunked_dedupesIdenticalChunks_zeroChunksAreHoles() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).build()
        .build(tree(), tmp.resolve("image"));
    MkfsResult.DataBlob blob = r.dataBlob().orElseThrow();
    // Distinct non-zero chunks: the two random 4 KiB halves, the 1-byte tail chunk, "small".
    assertThat(blob.size()).isEqualTo(4 * 4096);
    assertThat(blob.sha256Hex()).isEqualTo(sha256(blob.path()));
    try (ImageSource meta = ImageSource.of(r.image()); ImageSource data = ImageSource.of(blob.path())) {
      ErofsImage img = ErofsImage.open(meta, List.of(data));
      assertThat(img.devices()).singleElement().satisfies(d -> {
        assertThat(d.tag()).isEqualTo(blob.sha256Hex());
        assertThat(d.blocks()).isEqualTo(4);
      });
      ErofsImage.Node twice = img.lookup("/twice").orElseThrow();
      byte[] all = img.openStream(twice).readAllBytes();
      assertThat(all).hasSize(65536 + 4096);
      assertThat(all).isEqualTo(Files.readAllBytes(tmp.resolve("src/twice")));
    }
  }

  @Test
  void blobIndex_digestsEveryPieceOfTheBlob() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).build()
        .build(tree(), tmp.resolve("image"));
    Path blobPath = r.dataBlob().orElseThrow().path();
    byte[] blob = Files.readAllBytes(blobPath);
    assertThat(r.imageBytes()).isEqualTo(Files.size(r.image())).isGreaterThan(r.erofsBytes());
    try (ImageSource meta = ImageSource.of(r.image())) {
      BlobIndex.Blob index = BlobIndex.read(meta).orElseThrow().get(0);
      assertThat(index.tag()).isEqualTo(r.dataBlob().get().sha256Hex());
      assertThat(index.blobSize()).isEqualTo(blob.length);
      assertThat(index.pieceSize()).isEqualTo(Mkfs.DEFAULT_PIECE_SIZE); // independent of the chunk size
      for (int i = 0; i < index.pieceCount(); i++) {
        MessageDigest md = PieceDigests.sha256();
        md.update(blob, (int) index.pieceOffset(i), index.pieceLength(i));
        assertThat(index.digests().get(i)).isEqualTo(md.digest());
      }
    }
  }

  @Test
  void chunkedDataBlob_laysFilesOutInDepthFirstNameOrder_asTarReadsTheTree() throws IOException {
    Path src = tmp.resolve("order");
    // Breadth-first would put b and z (top level) before a/sub/y and a/x.
    List<String> depthFirst = List.of("a/sub/y", "a/x", "b", "c/w", "z");
    for (String f : depthFirst) {
      Files.createDirectories(src.resolve(f).getParent());
      Files.write(src.resolve(f), (f + " ").repeat(3000).getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    }
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).build().build(src, tmp.resolve("order.img"));
    String blob = new String(Files.readAllBytes(r.dataBlob().orElseThrow().path()),
        java.nio.charset.StandardCharsets.ISO_8859_1);
    int last = -1;
    for (String f : depthFirst) {
      int at = blob.indexOf(f + " " + f);
      assertThat(at).as("offset of %s in the data blob", f).isGreaterThan(last);
      last = at;
    }
  }

  @Test
  void verifying_aDifferentBlobOfTheSameSize_failsNamingTheBlobAndPiece_theRightOneReads() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).pieceSize(4096).build()
        .build(tree(), tmp.resolve("image"));
    Path blobPath = r.dataBlob().orElseThrow().path();
    byte[] wrong = Files.readAllBytes(blobPath);
    wrong[4096 + 10] ^= 1; // piece 1
    Path other = Files.write(tmp.resolve("other-blob"), wrong);
    try (ImageSource meta = ImageSource.of(r.image()); ImageSource bad = ImageSource.of(other);
        ImageSource good = ImageSource.of(blobPath)) {
      ErofsImage img = ErofsImage.open(meta, BlobIndex.verifying(meta, List.of(bad)));
      ErofsImage.Node twice = img.lookup("/twice").orElseThrow();
      // Unverified, the same read returns the changed byte: the image cannot tell.
      assertThat(ErofsImage.open(meta, List.of(bad)).openStream(twice).readAllBytes())
          .isNotEqualTo(Files.readAllBytes(tmp.resolve("src/twice")));
      assertThatThrownBy(() -> img.openStream(twice).readAllBytes())
          .isInstanceOf(BlobMismatchException.class)
          .hasMessageContaining("data blob " + other)
          .hasMessageContaining("piece 1 [4096, 8192)")
          .hasMessageContaining("not the blob this image was built with");
      ErofsImage ok = ErofsImage.open(meta, BlobIndex.verifying(meta, List.of(good)));
      assertThat(ok.openStream(ok.lookup("/twice").orElseThrow()).readAllBytes())
          .isEqualTo(Files.readAllBytes(tmp.resolve("src/twice")));
    }
    Path shorter = Files.write(tmp.resolve("short-blob"), java.util.Arrays.copyOf(wrong, wrong.length - 1));
    try (ImageSource meta = ImageSource.of(r.image()); ImageSource s = ImageSource.of(shorter)) {
      assertThatThrownBy(() -> BlobIndex.verifying(meta, List.of(s)))
          .isInstanceOf(BlobMismatchException.class)
          .hasMessageContaining("has " + (wrong.length - 1) + " bytes, the image's blob index says " + wrong.length);
    }
  }

  @Test
  void blobIndex_absentFromFullImages_corruptTrailerDetected() throws IOException {
    MkfsResult full = Mkfs.builder().build().build(tree(), tmp.resolve("full"));
    try (ImageSource s = ImageSource.of(full.image())) {
      assertThat(BlobIndex.read(s)).isEmpty();
    }
    MkfsResult chunked = Mkfs.builder().layout(Layout.CHUNKED).build().build(tree(), tmp.resolve("meta"));
    byte[] bytes = Files.readAllBytes(chunked.image());
    bytes[bytes.length - BlobIndex.FOOTER_SIZE - 5] ^= 1; // inside the last digest
    assertThatThrownBy(() -> BlobIndex.read(ImageSource.of(bytes)))
        .isInstanceOf(CorruptImageException.class).hasMessageContaining("blob index: bad CRC32C");
  }

  @Test
  void flatConcatenation_metaThenBlob_readsWithoutDevices() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).build()
        .build(tree(), tmp.resolve("image"));
    // The trailer is padded to a block and the device's uniaddr points past it.
    assertThat(r.imageBytes() % 4096).isZero();
    java.io.ByteArrayOutputStream flat = new java.io.ByteArrayOutputStream();
    flat.writeBytes(Files.readAllBytes(r.image()));
    flat.writeBytes(Files.readAllBytes(r.dataBlob().orElseThrow().path()));
    ErofsImage img = ErofsImage.open(ImageSource.of(flat.toByteArray()), List.of());
    assertThat(img.hasDeviceData()).isTrue();
    assertThat(img.openStream(img.lookup("/twice").orElseThrow()).readAllBytes())
        .isEqualTo(Files.readAllBytes(tmp.resolve("src/twice")));
  }

  @Test
  void unifiedAddress_device0ChunkInsideTheDeviceWindow_readsTheDevice() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).build()
        .build(tree(), tmp.resolve("image"));
    byte[] meta = Files.readAllBytes(r.image());
    Path blob = r.dataBlob().orElseThrow().path();
    ErofsImage.Node twice;
    long uniaddr;
    try (ImageSource m = ImageSource.of(meta)) {
      ErofsImage img = ErofsImage.open(m, List.of());
      twice = img.lookup("/twice").orElseThrow();
      uniaddr = img.devices().get(0).uniaddr();
    }
    // Rewrite chunk 0 of /twice as {device 0, uniaddr + blk}: the same bytes, addressed
    // through the unified address space (how 4-byte block maps reach blobs).
    java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(meta).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    int index = (int) ((twice.nid() * 32 + (twice.extended() ? 64 : 32) + 7) / 8 * 8);
    assertThat(b.getShort(index + 2)).isEqualTo((short) 1);
    long blk = b.getInt(index + 4) & 0xFFFFFFFFL;
    b.putShort(index + 2, (short) 0).putInt(index + 4, (int) (uniaddr + blk));
    b.putInt(1024 + 4, io.lazypull.erofs.format.Erofs.superblockChecksum(b, 4096));
    try (ImageSource m = ImageSource.of(meta); ImageSource d = ImageSource.of(blob)) {
      ErofsImage img = ErofsImage.open(m, List.of(d));
      assertThat(img.openStream(img.lookup("/twice").orElseThrow()).readAllBytes())
          .isEqualTo(Files.readAllBytes(tmp.resolve("src/twice")));
    }
  }

  @Test
  void chunkSize_mustBeAPowerOfTwoOfAtLeast4096() {
    assertThatThrownBy(() -> Mkfs.builder().chunkSize(6000)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Mkfs.builder().chunkSize(2048)).isInstanceOf(IllegalArgumentException.class);
  }

  static String sha256(Path p) throws IOException {
    return HexFormat.of().formatHex(PieceDigests.sha256().digest(Files.readAllBytes(p)));
  }
}
