package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.github.luben.zstd.ZstdOutputStream;
import io.lazypull.erofs.format.Erofs;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.archivers.tar.TarConstants;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Tar layers: whiteouts, implied directories, long names, escapes refused, compressed streams. */
class TarSourceTest {
  @TempDir Path tmp;

  /** Builds a tar in memory; each call adds one entry. */
  private static final class Tar {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final TarArchiveOutputStream out;

    Tar() {
      this(TarArchiveOutputStream.LONGFILE_POSIX);
    }

    /** {@code longFileMode}: PAX records or GNU ././@LongLink headers for long names. */
    Tar(int longFileMode) {
      out = new TarArchiveOutputStream(bytes);
      out.setLongFileMode(longFileMode);
      out.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
    }

    Tar dir(String name) throws IOException {
      TarArchiveEntry e = new TarArchiveEntry(name.endsWith("/") ? name : name + "/");
      e.setModTime(1000L * 1_600_000_000L);
      out.putArchiveEntry(e);
      out.closeArchiveEntry();
      return this;
    }

    Tar file(String name, String content) throws IOException {
      byte[] b = content.getBytes(StandardCharsets.UTF_8);
      TarArchiveEntry e = new TarArchiveEntry(name, /* preserveAbsolutePath= */ true);
      e.setSize(b.length);
      e.setModTime(1000L * 1_600_000_000L);
      out.putArchiveEntry(e);
      out.write(b);
      out.closeArchiveEntry();
      return this;
    }

    Tar link(String name, String target, byte type) throws IOException {
      TarArchiveEntry e = new TarArchiveEntry(name, type);
      e.setLinkName(target);
      out.putArchiveEntry(e);
      out.closeArchiveEntry();
      return this;
    }

    byte[] finish() throws IOException {
      out.finish();
      out.close();
      return bytes.toByteArray();
    }
  }

  private ErofsImage buildAndOpen(byte[] tar, Layout layout) throws IOException {
    Path tarFile = Files.write(tmp.resolve("layer.tar"), tar);
    MkfsResult r = Mkfs.builder().layout(layout).buildTime(Instant.ofEpochSecond(1_700_000_000))
        .build().build(tarFile, tmp.resolve("image"));
    List<ImageSource> devs = r.dataBlob().isPresent()
        ? List.of(ImageSource.of(r.dataBlob().get().path())) : List.of();
    return ErofsImage.open(ImageSource.of(Files.readAllBytes(r.image())), devs);
  }

  private static String content(ErofsImage img, String path) throws IOException {
    return new String(img.openStream(img.lookup(path).orElseThrow()).readAllBytes(), StandardCharsets.UTF_8);
  }

  @Test
  void whiteouts_becomeOverlayfsForm() throws IOException {
    byte[] tar = new Tar().dir("dir").file("dir/.wh.gone", "").dir("dir2")
        .file("dir2/.wh..wh..opq", "").file("dir2/keep", "kept").finish();
    ErofsImage img = buildAndOpen(tar, Layout.FULL);
    ErofsImage.Node gone = img.lookup("/dir/gone").orElseThrow();
    assertThat(gone.mode()).isEqualTo(Erofs.S_IFCHR);
    assertThat(gone.rdevMajor()).isZero();
    assertThat(gone.rdevMinor()).isZero();
    Map<String, byte[]> dirX = img.xattrs(img.lookup("/dir").orElseThrow());
    assertThat(dirX).containsOnlyKeys("trusted.overlay.origin");
    assertThat(dirX.get("trusted.overlay.origin")).isEmpty();
    Map<String, byte[]> dir2X = img.xattrs(img.lookup("/dir2").orElseThrow());
    assertThat(dir2X.get("trusted.overlay.opaque")).isEqualTo(new byte[] {'y'});
    assertThat(img.lookup("/dir2/.wh..wh..opq")).isEmpty();
    assertThat(img.lookup("/dir/.wh.gone")).isEmpty();
    assertThat(content(img, "/dir2/keep")).isEqualTo("kept");
  }

  @Test
  void impliedDirectories_rootOwned0755AtBuildTime() throws IOException {
    ErofsImage img = buildAndOpen(new Tar().file("x/y/z", "zz").finish(), Layout.TAR_INDEX);
    for (String p : List.of("/", "/x", "/x/y")) {
      ErofsImage.Node d = img.lookup(p).orElseThrow();
      assertThat(d.mode()).as(p).isEqualTo(Erofs.S_IFDIR | 0755);
      assertThat(d.uid()).isZero();
      assertThat(d.mtime()).isEqualTo(1_700_000_000L);
    }
    assertThat(content(img, "/x/y/z")).isEqualTo("zz");
  }

  @Test
  void laterEntryReplacesEarlier_andHardLinksShareTheInode() throws IOException {
    byte[] tar = new Tar().file("f", "old").file("f", "new").link("h", "f", TarConstants.LF_LINK).finish();
    ErofsImage img = buildAndOpen(tar, Layout.CHUNKED);
    assertThat(content(img, "/f")).isEqualTo("new");
    assertThat(img.lookup("/h").orElseThrow().nid()).isEqualTo(img.lookup("/f").orElseThrow().nid());
    assertThat(img.lookup("/f").orElseThrow().nlink()).isEqualTo(2);
  }

  @Test
  void longNames_paxAndComponentsOf255Bytes() throws IOException {
    String name255 = "n".repeat(255);
    String deep = "d".repeat(200) + "/" + "e".repeat(200) + "/" + name255;
    ErofsImage img = buildAndOpen(new Tar().file(deep, "deep").finish(), Layout.FULL);
    assertThat(content(img, deep)).isEqualTo("deep");
  }

  @Test
  void longNames_gnuLongNameAndLongLinkHeaders() throws IOException {
    String longName = "g".repeat(150) + "/" + "h".repeat(200);
    String longTarget = "t/".repeat(120) + "end";
    byte[] tar = new Tar(TarArchiveOutputStream.LONGFILE_GNU).file(longName, "gnu")
        .link("l".repeat(180), longTarget, TarConstants.LF_SYMLINK).finish();
    ErofsImage img = buildAndOpen(tar, Layout.TAR_INDEX);
    assertThat(content(img, longName)).isEqualTo("gnu");
    ErofsImage.Node link = img.lookup("l".repeat(180)).orElseThrow();
    assertThat(new String(img.readlink(link), StandardCharsets.UTF_8)).isEqualTo(longTarget);
  }

  @Test
  void escapingEntries_refusedNamingTheEntry() {
    assertThatThrownBy(() -> buildAndOpen(new Tar().file("../evil", "x").finish(), Layout.FULL))
        .hasMessageContaining("tar entry '../evil'").hasMessageContaining("escapes");
    assertThatThrownBy(() -> buildAndOpen(new Tar().file("a/../../evil", "x").finish(), Layout.FULL))
        .hasMessageContaining("tar entry 'a/../../evil'");
    assertThatThrownBy(() -> buildAndOpen(new Tar().file("/etc/passwd", "x").finish(), Layout.FULL))
        .hasMessageContaining("absolute");
    assertThatThrownBy(() -> buildAndOpen(new Tar().link("s", "/etc", TarConstants.LF_SYMLINK)
        .file("s/passwd", "x").finish(), Layout.FULL))
        .hasMessageContaining("tar entry 's/passwd'").hasMessageContaining("symlink 's'");
    assertThatThrownBy(() -> buildAndOpen(new Tar().dir("d").link("s", "d", TarConstants.LF_SYMLINK)
        .link("h", "s/x", TarConstants.LF_LINK).finish(), Layout.FULL))
        .hasMessageContaining("tar entry 'h'").hasMessageContaining("symlink 's'");
    assertThatThrownBy(() -> buildAndOpen(new Tar().link("h", "missing", TarConstants.LF_LINK).finish(), Layout.FULL))
        .hasMessageContaining("tar entry 'h'").hasMessageContaining("hard link target 'missing'");
  }

  @Test
  void zstdStream_sniffedAndDecompressed() throws IOException {
    byte[] tar = new Tar().file("a", "zstd!").finish();
    ByteArrayOutputStream z = new ByteArrayOutputStream();
    try (OutputStream out = new ZstdOutputStream(z)) {
      out.write(tar);
    }
    MkfsResult r = Mkfs.builder().build().buildFromTarStream(new ByteArrayInputStream(z.toByteArray()),
        tmp.resolve("image"));
    ErofsImage img = ErofsImage.open(ImageSource.of(r.image()), List.of());
    assertThat(content(img, "/a")).isEqualTo("zstd!");
    try (var files = Files.list(tmp)) {
      assertThat(files.map(p -> p.getFileName().toString())).containsExactly("image"); // temp tar removed
    }
  }

  @Test
  void tarIndex_fromDirectory_refused() {
    assertThatThrownBy(() -> Mkfs.builder().layout(Layout.TAR_INDEX).build().build(tmp, tmp.resolve("x")))
        .hasMessageContaining("tar-index layout needs a tar source");
  }
}
