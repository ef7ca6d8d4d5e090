package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The reader on images nobody here wrote (mkfs.erofs 1.5: plain with shared xattrs, chunked
 * with a blob device, chunked with 4-byte block maps), compared with the kernel's view of the
 * same images; and on a full image holding a file over 4 GiB. The mkfs.erofs source is the
 * generated tree without its two 255-byte names, which mkfs.erofs 1.5 cannot handle.
 */
class ReaderTest {
  @TempDir Path tmp;

  private static Path tree;

  private static synchronized Path tree() throws IOException {
    if (tree == null) {
      tree = TestTrees.generate(TestTrees.newDir("mkfs-erofs-src-").resolve("gen"), false);
      // mkfs.erofs 1.5 fails on 255-byte names ("Could not format the device: No such file").
      TestTrees.deleteQuietly(tree.resolve("d".repeat(255)));
      TestTrees.deleteQuietly(tree.resolve("n".repeat(251) + ".txt"));
    }
    return tree;
  }

  private void mkfsErofsThenCompare(List<String> options, Path blob) throws IOException {
    Requirements.assumeRoot();
    Requirements.assumeCommand("mkfs.erofs");
    Path image = Files.createFile(tmp.resolve("image")); // mkfs.erofs 1.5 does not create it
    if (blob != null) {
      Files.createFile(blob);
    }
    List<String> cmd = new java.util.ArrayList<>(List.of("mkfs.erofs", "--quiet", "-T", "1700000000"));
    cmd.addAll(options);
    cmd.addAll(List.of(image.toString(), tree().toString()));
    TestTrees.run(cmd);
    List<Path> devices = blob == null ? List.of() : List.of(blob);
    try (ImageChecks.Mounted m = new ImageChecks.Mounted(image, devices)) {
      ImageChecks.assertReaderMatchesKernel(image, devices, m.dir);
    }
  }

  @Test
  void mkfsErofs_plainWithSharedXattrs_readerMatchesKernel() throws IOException {
    mkfsErofsThenCompare(List.of("-x1"), null);
  }

  @Test
  void mkfsErofs_chunkedWithBlobDevice_readerMatchesKernel() throws IOException {
    Path blob = tmp.resolve("blob");
    mkfsErofsThenCompare(List.of("--chunksize=65536", "--blobdev=" + blob), blob);
  }

  @Test
  void mkfsErofs_chunkedBlockMap_readerMatchesKernel() throws IOException {
    mkfsErofsThenCompare(List.of("--chunksize=8192"), null);
  }

  @Test
  void fullImage_fileOver4GiB_extendedInodeReadAtAnyOffset() throws IOException {
    Path src = Files.createDirectory(tmp.resolve("src"));
    long size = TestTrees.HUGE_SIZE;
    byte[] middle = new byte[5000];
    new Random(3).nextBytes(middle);
    try (FileChannel ch = FileChannel.open(src.resolve("huge"), StandardOpenOption.CREATE_NEW,
        StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(middle), 3L << 30);
      ch.write(ByteBuffer.wrap(new byte[] {42}), size - 1);
    }
    MkfsResult r = Mkfs.builder().build().build(src, tmp.resolve("image"));
    // Zero blocks are not written: the image is sparse, not 4 GiB on disk.
    assertThat(Files.size(r.image())).isGreaterThan(size);
    try (ImageSource s = ImageSource.of(r.image())) {
      ErofsImage img = ErofsImage.open(s, List.of());
      ErofsImage.Node huge = img.lookup("/huge").orElseThrow();
      assertThat(huge.size()).isEqualTo(size);
      assertThat(huge.extended()).isTrue();
      ByteBuffer buf = ByteBuffer.allocate(middle.length);
      img.read(huge, 3L << 30, buf);
      assertThat(buf.array()).isEqualTo(middle);
      ByteBuffer last = ByteBuffer.allocate(10);
      assertThat(img.read(huge, size - 1, last)).isEqualTo(1);
      assertThat(last.get(0)).isEqualTo((byte) 42);
      assertThat(img.read(huge, size, ByteBuffer.allocate(1))).isEqualTo(-1);
    }
  }
}
