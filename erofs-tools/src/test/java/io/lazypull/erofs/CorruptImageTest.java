package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.lazypull.erofs.format.Erofs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Malformed images: every one gives a {@link CorruptImageException} whose message names what
 * is wrong and where; random corruption never gives another exception, a hang or an OOM.
 *
 * <pre>
 * src/
 *   a/b/c        nested directories (cycles are made by pointing a dirent back up)
 *   many/        200 entries, a two-block directory (4 KiB blocks)
 *   file 10000 bytes, small 7 bytes, link -> small, x (user.k = v)
 * </pre>
 */
class CorruptImageTest {
  @TempDir static Path tmp;
  private static byte[] full;
  private static byte[] meta;
  private static byte[] blob;

  @BeforeAll
  static void images() throws IOException {
    Path src = Files.createDirectories(tmp.resolve("src/a/b/c"));
    src = tmp.resolve("src");
    Path many = Files.createDirectory(src.resolve("many"));
    for (int i = 0; i < 200; i++) {
      Files.write(many.resolve("entry-with-a-longer-name-" + i), new byte[] {(byte) i});
    }
    byte[] data = new byte[10000];
    new Random(1).nextBytes(data);
    Files.write(src.resolve("file"), data);
    Files.writeString(src.resolve("small"), "small!\n");
    Files.createSymbolicLink(src.resolve("link"), Path.of("small"));
    Path x = Files.writeString(src.resolve("x"), "x");
    io.lazypull.sys.Posix.setXattr(x.toString(), "user.k", "v".getBytes(StandardCharsets.UTF_8));
    Mkfs fullMkfs = Mkfs.builder().buildTime(Instant.ofEpochSecond(1)).build();
    full = Files.readAllBytes(fullMkfs.build(src, tmp.resolve("full.img")).image());
    MkfsResult chunked = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096)
        .blobDir(tmp.resolve("blobs")).build().build(src, tmp.resolve("meta.img"));
    meta = Files.readAllBytes(chunked.image());
    blob = Files.readAllBytes(chunked.dataBlob().orElseThrow().path());
  }

  /** Opens, walks, and reads every file, link and xattr: the whole surface of the reader. */
  private static long readEverything(byte[] image, byte[] device) throws IOException {
    List<ImageSource> devs = device == null ? List.of() : List.of(ImageSource.of(device));
    ErofsImage img = ErofsImage.open(ImageSource.of(image), devs);
    long[] bytes = {0};
    img.walk((path, n) -> {
      img.xattrs(n);
      if (n.isSymlink()) {
        img.readlink(n);
      } else if (n.isRegular()) {
        ByteBuffer buf = ByteBuffer.allocate(8192);
        for (long pos = 0; pos < n.size() && pos < (1 << 24); pos += buf.capacity()) {
          bytes[0] += Math.max(0, img.read(n, pos, buf.clear()));
        }
      }
    });
    return bytes[0];
  }

  private static String corruptMessage(byte[] image, byte[] device) {
    try {
      readEverything(image, device);
    } catch (CorruptImageException e) {
      return e.getMessage();
    } catch (IOException e) {
      throw new AssertionError("not a CorruptImageException", e);
    }
    throw new AssertionError("no error");
  }

  /** Recomputes the superblock checksum, so a corruption reaches the structures behind it. */
  private static byte[] rechecksum(byte[] image) {
    ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
    int blockSize = 1 << (image[Erofs.SUPER_OFFSET + 12] & 0xff);
    b.putInt(Erofs.SUPER_OFFSET + 4, Erofs.superblockChecksum(b, blockSize));
    return image;
  }

  private static ErofsImage.Node node(byte[] image, String path) throws IOException {
    return ErofsImage.open(ImageSource.of(image), List.of()).lookup(path).orElseThrow();
  }

  private static ByteBuffer le(byte[] image) {
    return ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
  }

  /** Byte position of a directory's data (inline tail or first block). */
  private static int dirData(byte[] image, ErofsImage.Node dir) {
    int pos = (int) dir.nid() * 32 + (dir.extended() ? 64 : 32)
        + (dir.xattrIcount() == 0 ? 0 : 12 + 4 * (dir.xattrIcount() - 1));
    return dir.datalayout() == Erofs.DATALAYOUT_FLAT_INLINE && dir.size() < 4096
        ? pos : (dir.rawU() * 4096);
  }

  @Test
  void validImages_readCompletely() throws IOException {
    assertThat(readEverything(full, null)).isGreaterThan(10000);
    assertThat(readEverything(meta, blob)).isGreaterThan(10000);
  }

  @Test
  void truncated_namesTheSize() {
    assertThat(corruptMessage(Arrays.copyOf(full, 1000), null)).contains("superblock").contains("too small");
    assertThat(corruptMessage(Arrays.copyOf(full, full.length - 4096), null))
        .contains("superblock: says").contains("truncated");
  }

  @Test
  void badMagic_named() {
    byte[] img = full.clone();
    img[Erofs.SUPER_OFFSET] ^= 1;
    assertThat(corruptMessage(img, null)).contains("superblock: bad magic");
  }

  @Test
  void flippedChecksumOrSuperblockBit_detected() {
    byte[] img = full.clone();
    img[Erofs.SUPER_OFFSET + 4] ^= 1;
    assertThat(corruptMessage(img, null)).contains("superblock: bad checksum");
    img = full.clone();
    img[Erofs.SUPER_OFFSET + 0x10] ^= 0x40; // inos
    assertThat(corruptMessage(img, null)).contains("superblock: bad checksum");
  }

  @Test
  void unknownIncompatFeature_refused() {
    byte[] img = full.clone();
    img[Erofs.SUPER_OFFSET + 0x51] |= (byte) 0x80;
    assertThat(corruptMessage(rechecksum(img), null)).contains("unsupported incompatible features 0x8000");
  }

  @Test
  void directoryCycle_detected() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node b = node(img, "/a/b");
    ErofsImage.Node root = node(img, "/");
    // b's entries: ".", "..", "c": point "c" at the root.
    int data = dirData(img, b);
    le(img).putLong(data + 2 * 12, root.nid());
    assertThat(corruptMessage(rechecksum(img), null)).contains("directory cycle").contains("/a/b/c");
  }

  @Test
  void badNameoff_named() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node a = node(img, "/a");
    le(img).putShort(dirData(img, a) + 12 + 8, (short) 9000);
    assertThat(corruptMessage(rechecksum(img), null))
        .contains("nid " + a.nid()).contains("nameoff 9000");
  }

  @Test
  void nameWithSlash_refused() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node a = node(img, "/a");
    int data = dirData(img, a);
    int nameoff0 = le(img).getShort(data + 8) & 0xffff;
    img[data + nameoff0 + 3] = '/'; // inside "b" or the names after "." and ".."
    assertThat(corruptMessage(rechecksum(img), null)).contains("nid " + a.nid());
  }

  @Test
  void outOfRangeBlock_named() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node f = node(img, "/file");
    le(img).putInt((int) f.nid() * 32 + 16, 0x00FFFFF0);
    assertThat(corruptMessage(rechecksum(img), null)).contains("nid " + f.nid()).contains("beyond");
  }

  @Test
  void hugeDirectorySize_refusedBeforeAllocating() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node many = node(img, "/many");
    int pos = (int) many.nid() * 32;
    if (many.extended()) {
      le(img).putLong(pos + 8, 1L << 40);
    } else {
      le(img).putInt(pos + 8, 0x7FFFFFFF);
    }
    assertThat(corruptMessage(rechecksum(img), null)).contains("nid " + many.nid()).contains("directory size");
  }

  @Test
  void xattrIcountOne_refused() throws IOException {
    byte[] img = full.clone();
    ErofsImage.Node x = node(img, "/x");
    le(img).putShort((int) x.nid() * 32 + 2, (short) 1);
    assertThat(corruptMessage(rechecksum(img), null)).contains("nid " + x.nid()).contains("xattr_icount 1");
  }

  @Test
  void badChunkDevice_named() throws IOException {
    byte[] img = meta.clone();
    ErofsImage.Node f = node(img, "/file");
    int idx = (int) Erofs.roundUp(f.nid() * 32 + (f.extended() ? 64 : 32), 8);
    le(img).putInt(idx + 4, 0x7FFFFFF0); // block far beyond the blob
    assertThat(corruptMessage(rechecksum(img), blob)).contains("nid " + f.nid()).contains("chunk 0");
  }

  @Test
  void missingDevice_isAnIoErrorNamingTheDevice() throws IOException {
    ErofsImage img = ErofsImage.open(ImageSource.of(meta), List.of());
    ErofsImage.Node f = img.lookup("/file").orElseThrow();
    assertThat(img.hasDeviceData()).isFalse();
    assertThatThrownBy(() -> img.read(f, 0, ByteBuffer.allocate(10)))
        .isInstanceOf(IOException.class).isNotInstanceOf(CorruptImageException.class)
        .hasMessageContaining("device 1");
  }

  @Test
  void randomByteFlips_giveCorruptImageExceptionOrSucceed() {
    Random rnd = new Random(2024);
    int[] outcomes = new int[2];
    assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
      for (int i = 0; i < 600; i++) {
        boolean chunked = i % 2 == 1;
        byte[] img = (chunked ? meta : full).clone();
        int metaEnd = Math.min(img.length, 3 * 4096); // superblock, inodes and directories
        int flips = 1 + rnd.nextInt(8);
        for (int k = 0; k < flips; k++) {
          int at = Erofs.SUPER_OFFSET + rnd.nextInt(metaEnd - Erofs.SUPER_OFFSET);
          img[at] ^= (byte) (1 << rnd.nextInt(8));
        }
        if (rnd.nextInt(4) != 0) {
          rechecksum(img); // most runs get past the checksum to the structures behind it
        }
        try {
          readEverything(img, chunked ? blob : null);
          outcomes[0]++;
        } catch (CorruptImageException e) {
          assertThat(e.getMessage()).isNotBlank();
          outcomes[1]++;
        } catch (IOException e) {
          // Only a missing device is a legitimate non-corruption error here, and a device is given.
          throw new AssertionError("iteration " + i + ": " + e, e);
        } catch (RuntimeException | OutOfMemoryError e) {
          throw new AssertionError("iteration " + i + ": " + e, e);
        }
      }
    });
    assertThat(outcomes[1]).isGreaterThan(100);
  }
}
