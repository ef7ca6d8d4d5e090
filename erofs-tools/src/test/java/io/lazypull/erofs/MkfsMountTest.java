package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every layout, built from the generated edge-case tree and from real data (part of the JDK,
 * /usr/share/doc), from directories and from GNU tar archives: fsck.erofs accepts the 4 KiB
 * images, the kernel mounts each one (file-backed, the data blob as device), the mounted tree
 * equals the source in every attribute, and our reader's listing equals the kernel's.
 *
 * <p>The huge sparse file (4 GiB + 4097 bytes, extended inode) is only in the chunked
 * layout's directory source, where its holes cost nothing: in a full image fsck.erofs and the
 * kernel read its 4 GiB of zeros (30 s), and a tar of it would hold 4 GiB. {@link
 * ReaderTest} covers a > 4 GiB file in a full image through the reader. Sockets are not
 * archived by GNU tar.
 */
class MkfsMountTest {
  private static Path genDir;
  private static Path genTarTree;
  private static Path genTar;
  private Path out;

  @BeforeAll
  static void requirements() {
    Requirements.assumeRoot();
    Requirements.assumeCommand("fsck.erofs");
    Requirements.assumeCommand("tar");
  }

  @BeforeEach
  void outputDir() throws IOException {
    out = TestTrees.newDir("out-");
  }

  private static synchronized Path genDir() throws IOException {
    if (genDir == null) {
      genDir = TestTrees.generate(TestTrees.newDir("gen-").resolve("gen"), true);
    }
    return genDir;
  }

  private static synchronized Path genTar() throws IOException {
    if (genTar == null) {
      genTarTree = TestTrees.generate(TestTrees.newDir("gentar-").resolve("gen"), false);
      genTar = TestTrees.gnuTar(genTarTree, genTarTree.resolveSibling("gen.tar"));
    }
    return genTar;
  }

  private static TreeDiff.Options tarOptions() {
    return TreeDiff.options().ignore(p -> p.equals("dev/sock"));
  }

  private MkfsResult build(Layout layout, Path source) throws IOException {
    return Mkfs.builder().layout(layout).build().build(source, out.resolve("image"));
  }

  private void check(MkfsResult r, Path expected, TreeDiff.Options options) throws IOException {
    check(r, expected, options, false);
  }

  /** {@code flat}: also mount {@code cat meta blob} alone (the containerd layout). */
  private void check(MkfsResult r, Path expected, TreeDiff.Options options, boolean flat) throws IOException {
    try {
      if (r.layout() != Layout.TAR_INDEX) {
        ImageChecks.fsck(r.image(), ImageChecks.devices(r));
      }
      ImageChecks.mountAndCompare(r, expected, options);
      if (flat) {
        Path flatImage = out.resolve("flat");
        TestTrees.run(List.of("sh", "-c", "cat '" + r.image() + "' '" + r.dataBlob().orElseThrow().path()
            + "' > '" + flatImage + "'"));
        try (ImageChecks.Mounted m = new ImageChecks.Mounted(flatImage, List.of())) {
          TreeDiff.assertSame(expected, m.dir, options);
        }
      }
    } finally {
      TestTrees.deleteQuietly(out);
    }
  }

  // ---- full ----

  @Test
  void full_generatedDirectory_mountsIdentical() throws IOException {
    genTar(); // the tree without the huge file: 4 GiB through fsck and the kernel cost 30 s
    MkfsResult r = build(Layout.FULL, genTarTree);
    assertThat(r.dataBlob()).isEmpty();
    assertThat(r.imageBytes()).isEqualTo(r.erofsBytes());
    check(r, genTarTree, TreeDiff.options());
  }

  @Test
  void full_generatedGnuTar_mountsIdentical() throws IOException {
    check(build(Layout.FULL, genTar()), genTarTree, tarOptions());
  }

  @Test
  void full_jdkCopy_mountsIdentical() throws IOException {
    check(build(Layout.FULL, TestTrees.jdkCopy()), TestTrees.jdkCopy(), TreeDiff.options());
  }

  @Test
  void full_docsTarGz_mountsIdentical() throws IOException {
    Path tar = TestTrees.gnuTar(TestTrees.docsCopy(), out.resolveSibling(out.getFileName() + ".tar.gz"), "-z");
    try {
      check(build(Layout.FULL, tar), TestTrees.docsCopy(), TreeDiff.options());
    } finally {
      Files.deleteIfExists(tar);
    }
  }

  @Test
  void full_posixAcls_mountIdentical() throws IOException {
    Path src = Files.createDirectories(out.resolveSibling(out.getFileName() + "-acl/d"));
    Path file = Files.writeString(src.resolve("f"), "acl");
    // struct posix_acl_xattr_header (version 2) + entries {u16 tag, u16 perm, u32 id}:
    // user::rw- user:1000:r-- group::r-- mask::r-- other::r--
    java.nio.ByteBuffer acl = java.nio.ByteBuffer.allocate(4 + 5 * 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    acl.putInt(2);
    acl.putShort((short) 0x01).putShort((short) 6).putInt(-1);
    acl.putShort((short) 0x02).putShort((short) 4).putInt(1000);
    acl.putShort((short) 0x04).putShort((short) 4).putInt(-1);
    acl.putShort((short) 0x10).putShort((short) 4).putInt(-1);
    acl.putShort((short) 0x20).putShort((short) 4).putInt(-1);
    io.lazypull.sys.Posix.setXattr(file.toString(), "system.posix_acl_access", acl.array());
    io.lazypull.sys.Posix.setXattr(src.toString(), "system.posix_acl_default", acl.array());
    Path root = src.getParent();
    try {
      check(build(Layout.FULL, root), root, TreeDiff.options());
    } finally {
      TestTrees.deleteQuietly(root);
    }
  }

  // ---- chunked ----

  @Test
  void chunked_generatedDirectoryWithHugeSparseFile_mountsIdentical() throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(1 << 20).build()
        .build(genDir(), out.resolve("image"));
    MkfsResult.DataBlob blob = r.dataBlob().orElseThrow();
    assertThat(blob.path().getFileName().toString()).isEqualTo(blob.sha256Hex()).hasSize(64);
    // mixed-chunks stores one distinct 1 MiB chunk twice and a zero chunk as a hole; the huge
    // file's holes cost nothing: the blob stays far below the tree's apparent size.
    assertThat(blob.size()).isLessThan(16L << 20);
    check(r, genDir(), TreeDiff.options());
  }

  @Test
  void chunked_generatedTarZst_smallChunks_mountsIdentical() throws IOException {
    Requirements.assumeCommand("zstd");
    Path zst = out.resolveSibling(out.getFileName() + ".tar.zst");
    TestTrees.run(List.of("zstd", "-q", "-f", genTar().toString(), "-o", zst.toString()));
    try {
      MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(4096).build()
          .build(zst, out.resolve("image"));
      check(r, genTarTree, tarOptions(), true);
    } finally {
      Files.deleteIfExists(zst);
    }
  }

  @Test
  void chunked_docsCopy_mountsIdentical() throws IOException {
    check(build(Layout.CHUNKED, TestTrees.docsCopy()), TestTrees.docsCopy(), TreeDiff.options());
  }

  @Test
  void chunked_jdkGnuTar_mountsIdentical() throws IOException {
    Path tar = TestTrees.gnuTar(TestTrees.jdkCopy(), out.resolveSibling(out.getFileName() + ".tar"));
    try {
      check(build(Layout.CHUNKED, tar), TestTrees.jdkCopy(), TreeDiff.options());
    } finally {
      Files.deleteIfExists(tar);
    }
  }

  // ---- tar-index ----

  @Test
  void tarIndex_generatedGnuTar_mountsIdentical() throws IOException {
    MkfsResult r = build(Layout.TAR_INDEX, genTar());
    MkfsResult.DataBlob blob = r.dataBlob().orElseThrow();
    // The data blob is the unmodified tar.
    assertThat(Files.mismatch(blob.path(), genTar())).isEqualTo(-1);
    check(r, genTarTree, tarOptions(), true);
  }

  @Test
  void tarIndex_generatedTarGzFromStream_mountsIdentical() throws IOException {
    Path gz = out.resolveSibling(out.getFileName() + ".tar.gz");
    TestTrees.run(List.of("sh", "-c", "gzip -c < '" + genTar() + "' > '" + gz + "'"));
    try (InputStream in = Files.newInputStream(gz)) {
      MkfsResult r = Mkfs.builder().layout(Layout.TAR_INDEX).build()
          .buildFromTarStream(in, out.resolve("image"));
      assertThat(Files.mismatch(r.dataBlob().orElseThrow().path(), genTar())).isEqualTo(-1);
      check(r, genTarTree, tarOptions());
    } finally {
      Files.deleteIfExists(gz);
    }
  }

  @Test
  void tarIndex_jdkGnuTar_mountsIdentical() throws IOException {
    Path tar = TestTrees.gnuTar(TestTrees.jdkCopy(), out.resolveSibling(out.getFileName() + ".tar"));
    try {
      check(build(Layout.TAR_INDEX, tar), TestTrees.jdkCopy(), TreeDiff.options());
    } finally {
      Files.deleteIfExists(tar);
    }
  }

  @Test
  void tarIndex_docsGnuTar_mountsIdentical() throws IOException {
    Path tar = TestTrees.gnuTar(TestTrees.docsCopy(), out.resolveSibling(out.getFileName() + ".tar"));
    try {
      check(build(Layout.TAR_INDEX, tar), TestTrees.docsCopy(), TreeDiff.options());
    } finally {
      Files.deleteIfExists(tar);
    }
  }
}
