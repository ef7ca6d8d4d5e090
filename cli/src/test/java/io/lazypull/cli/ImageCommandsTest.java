package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.sys.Posix;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code lazypull mkfs}, {@code inspect}, {@code extract} and {@code bench mkfs} through the
 * command line: help, usage errors (exit 2), failures (one line, exit 1), and an extraction
 * of every layout that equals its source in every attribute.
 *
 * <pre>
 * src/  file(3 KiB, user.comment) big(1 MiB+5) empty hard(link of file) setuid(4755)
 *       sub/(trusted.overlay.opaque=y) sub/deep  link -> file  fifo  chr(300:70000)
 *       owned(100000:200000)  ...nsec mtimes everywhere
 * </pre>
 */
class ImageCommandsTest {
  @TempDir Path tmp;

  record Result(int code, String out, String err) {}

  private static Result lazypull(String... args) {
    CommandLine cl = Main.newCommandLine();
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    int code = cl.execute(args);
    return new Result(code, out.toString(), err.toString());
  }

  private Path source() throws IOException {
    Path src = Files.createDirectories(tmp.resolve("src/sub"));
    src = src.getParent();
    byte[] data = new byte[3000];
    new java.util.Random(9).nextBytes(data);
    Path file = Files.write(src.resolve("file"), data);
    byte[] big = new byte[(1 << 20) + 5];
    new java.util.Random(10).nextBytes(big);
    Files.write(src.resolve("big"), big);
    Files.createFile(src.resolve("empty"));
    Files.createLink(src.resolve("hard"), file);
    Files.writeString(src.resolve("sub/deep"), "deep");
    Files.createSymbolicLink(src.resolve("link"), Path.of("file"));
    Posix.setXattr(file.toString(), "user.comment", "hi".getBytes(StandardCharsets.UTF_8));
    Path setuid = Files.writeString(src.resolve("setuid"), "s");
    if (Posix.getuid() == 0) {
      Posix.mknod(src.resolve("fifo").toString(), Posix.S_IFIFO | 0640, 0, 0);
      Posix.mknod(src.resolve("chr").toString(), Posix.S_IFCHR | 0600, 300, 70000);
      Posix.setXattr(src.resolve("sub").toString(), "trusted.overlay.opaque", new byte[] {'y'});
      Path owned = Files.writeString(src.resolve("owned"), "o");
      Files.setAttribute(owned, "unix:uid", 100000);
      Files.setAttribute(owned, "unix:gid", 200000);
    }
    Posix.chmod(setuid.toString(), 04755);
    for (String p : List.of("file", "big", "empty", "sub/deep", "setuid", "sub", "")) {
      Files.setLastModifiedTime(src.resolve(p), FileTime.from(Instant.ofEpochSecond(1_650_000_000L, 123_456_789L * p.length())));
    }
    return src;
  }

  @Test
  void help_describesEveryCommand() {
    assertThat(lazypull("mkfs", "--help").out()).contains("tar-index").contains("--chunk-size").contains("--blob-dir");
    assertThat(lazypull("inspect", "--help").out()).contains("--device").contains("--json");
    assertThat(lazypull("extract", "--help").out()).contains("--device").contains("hard links");
    assertThat(lazypull("bench", "mkfs", "--help").out()).contains("mkfs.erofs").contains("--runs");
  }

  @Test
  void usageErrors_exit2_failures_exit1WithOneLine() throws IOException {
    Path src = source();
    Result bad = lazypull("mkfs", "--layout", "zip", src.toString(), tmp.resolve("x").toString());
    assertThat(bad.code()).isEqualTo(2);
    assertThat(bad.err()).contains("unknown layout 'zip'");
    assertThat(lazypull("mkfs", "--chunk-size", "5000", "--layout", "chunked", src.toString(),
        tmp.resolve("x").toString()).code()).isEqualTo(2);
    Result piece = lazypull("mkfs", "--piece-size", "5000", "--layout", "chunked", src.toString(),
        tmp.resolve("x").toString());
    assertThat(piece.code()).isEqualTo(2);
    assertThat(piece.err()).contains("piece size must be a power of two");
    assertThat(lazypull("mkfs", "--piece-size", "64K", src.toString(), tmp.resolve("x").toString()).err())
        .contains("--piece-size only applies to --layout chunked or tar-index");
    Result missing = lazypull("mkfs", tmp.resolve("nope").toString(), tmp.resolve("x").toString());
    assertThat(missing.code()).isEqualTo(1);
    assertThat(missing.err().strip()).doesNotContain("\n").contains("no such file or directory");
    Files.writeString(tmp.resolve("garbage.img"), "not an image".repeat(200));
    Result corrupt = lazypull("inspect", tmp.resolve("garbage.img").toString());
    assertThat(corrupt.code()).isEqualTo(1);
    assertThat(corrupt.err().strip()).doesNotContain("\n").contains("superblock: bad magic");
  }

  @Test
  void mkfsChunked_inspectShowsDevicesBlobIndexAndTree() throws IOException {
    Path src = source();
    Path blobs = tmp.resolve("blobs");
    Result mk = lazypull("mkfs", "--layout", "chunked", "--chunk-size", "64K", "--blob-dir", blobs.toString(),
        src.toString(), tmp.resolve("meta").toString());
    assertThat(mk.code()).as(mk.err()).isZero();
    assertThat(mk.out()).contains("layout:      chunked").contains("fsid:").contains("data blob:");
    String blobHex = field(mk.out(), "blob sha256: *(\\p{XDigit}{64})");
    Path blob = blobs.resolve(blobHex);
    assertThat(blob).exists();

    Result text = lazypull("inspect", tmp.resolve("meta").toString());
    assertThat(text.code()).as(text.err()).isZero();
    assertThat(text.out()).contains("chunked_file").contains("device_table").contains("#1 tag " + blobHex)
        .contains("pass them with --device").contains("blob index:   1 blob(s)")
        .containsPattern("-rwsr-xr-x +\\d+ +\\d+ +1 +\\d+  /setuid")
        .contains("/link -> file");

    Result json = lazypull("inspect", "--json", "--device", blob.toString(), tmp.resolve("meta").toString());
    assertThat(json.code()).as(json.err()).isZero();
    JsonNode doc = new ObjectMapper().readTree(json.out());
    assertThat(doc.get("deviceData").asText()).isEqualTo("readable");
    assertThat(doc.get("devices").get(0).get("tag").asText()).isEqualTo(blobHex);
    assertThat(doc.get("blobIndex").get(0).get("pieceSize").asInt()).isEqualTo(16384); // the default, not the chunk size
    Result big = lazypull("mkfs", "--layout", "chunked", "--piece-size", "1M", "--blob-dir", blobs.toString(),
        src.toString(), tmp.resolve("meta-1m").toString());
    assertThat(big.code()).as(big.err()).isZero();
    JsonNode bigDoc = new ObjectMapper().readTree(lazypull("inspect", "--json", tmp.resolve("meta-1m").toString()).out());
    assertThat(bigDoc.get("blobIndex").get(0).get("pieceSize").asInt()).isEqualTo(1 << 20);
    List<String> paths = new ArrayList<>();
    doc.get("tree").forEach(e -> paths.add(e.get("path").asText()));
    assertThat(paths).contains("/", "/file", "/hard", "/sub/deep", "/link");
  }

  @Test
  void extract_everyLayout_equalsTheSource() throws IOException {
    Requirements.assumeRoot();
    Requirements.assumeCommand("tar");
    Path src = source();
    Path tar = tmp.resolve("src.tar");
    TestTrees.run(List.of("tar", "--xattrs", "--xattrs-include=*", "-C", src.toString(), "-cf", tar.toString(), "."));
    for (String layout : List.of("full", "chunked", "tar-index")) {
      Path blobs = tmp.resolve("blobs-" + layout);
      Path image = tmp.resolve("image-" + layout);
      String from = layout.equals("tar-index") ? tar.toString() : src.toString();
      Result mk = lazypull("mkfs", "--layout", layout, "--blob-dir", blobs.toString(), from, image.toString());
      assertThat(mk.code()).as(mk.err()).isZero();
      List<String> args = new ArrayList<>(List.of("extract"));
      if (!layout.equals("full")) {
        Result noDevice = lazypull("extract", image.toString(), tmp.resolve("x-" + layout).toString());
        assertThat(noDevice.code()).isEqualTo(1);
        assertThat(noDevice.err()).contains("--device");
        args.addAll(List.of("--device", blobs.resolve(field(mk.out(), "blob sha256: *(\\p{XDigit}{64})")).toString()));
      }
      Path out = tmp.resolve("out-" + layout);
      args.addAll(List.of(image.toString(), out.toString()));
      Result ex = lazypull(args.toArray(String[]::new));
      assertThat(ex.code()).as(layout + ": " + ex.err()).isZero();
      TreeDiff.assertSame(src, out, TreeDiff.options());
    }
  }

  @Test
  void extract_withADifferentBlobOfTheSameSize_failsNamingBlobAndPiece_andWritesNoWrongFile() throws IOException {
    Path src = source();
    Path blobs = tmp.resolve("blobs");
    Result mk = lazypull("mkfs", "--layout", "chunked", "--chunk-size", "64K", "--blob-dir", blobs.toString(),
        src.toString(), tmp.resolve("meta").toString());
    assertThat(mk.code()).as(mk.err()).isZero();
    Path blob = blobs.resolve(field(mk.out(), "blob sha256: *(\\p{XDigit}{64})"));
    byte[] bytes = Files.readAllBytes(blob);
    for (int i = 0; i < bytes.length; i += 65536) {
      bytes[i + 100] ^= 1; // every piece differs: whichever a file reads first
    }
    Path other = Files.write(tmp.resolve("other-blob"), bytes);
    Path out = tmp.resolve("out");
    Result ex = lazypull("extract", "--device", other.toString(), tmp.resolve("meta").toString(), out.toString());
    assertThat(ex.code()).isEqualTo(1);
    assertThat(ex.err().strip()).doesNotContain("\n")
        .contains("data blob " + other).containsPattern("piece \\d+ \\[\\d+, \\d+\\)")
        .contains("not the blob this image was built with");
    try (var files = Files.walk(out)) {
      for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
        Path original = src.resolve(out.relativize(f).toString());
        assertThat(f).as("extracted %s", f).hasSameBinaryContentAs(original);
      }
    }

    Result inspect = lazypull("inspect", "--device", tmp.resolve("meta").toString(), tmp.resolve("meta").toString());
    assertThat(inspect.code()).isEqualTo(1);
    assertThat(inspect.err()).contains("the image's blob index says " + Files.size(blob));
  }

  @Test
  void mkfsTarIndex_thatFails_leavesNothingInTheBlobDir() throws IOException {
    Requirements.assumeCommand("tar");
    Requirements.assumeCommand("gzip");
    Path src = Files.createDirectories(tmp.resolve("sparse-src"));
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(src.resolve("holes"),
        java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {1}), 4 << 20); // a hole, then one byte
    }
    Files.writeString(src.resolve("plain"), "plain");
    Path tar = tmp.resolve("sparse.tar");
    TestTrees.run(List.of("tar", "--sparse", "-C", src.toString(), "-cf", tar.toString(), "."));
    TestTrees.run(List.of("sh", "-c", "gzip -c " + tar + " > " + tar + ".gz"));
    for (String input : List.of(tar.toString(), tar + ".gz")) {
      Path blobs = Files.createDirectories(tmp.resolve("blobs-" + input.hashCode()));
      Result mk = lazypull("mkfs", "--layout", "tar-index", "--blob-dir", blobs.toString(), input,
          tmp.resolve("image-" + input.hashCode()).toString());
      assertThat(mk.code()).as(input).isEqualTo(1);
      assertThat(mk.err()).contains("sparse tar members cannot be indexed");
      try (var left = Files.list(blobs)) {
        assertThat(left.toList()).as("left in --blob-dir by a failed mkfs of " + input).isEmpty();
      }
    }
  }

  @Test
  void benchMkfs_printsMediansAndRatio() throws IOException {
    Requirements.assumeCommand("mkfs.erofs");
    Result r = lazypull("bench", "mkfs", "--tree", source().toString(), "--runs", "1");
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(r.out()).contains("lazypull mkfs").contains("mkfs.erofs").contains("ratio lazypull / mkfs.erofs");
  }

  private static String field(String text, String regex) {
    Matcher m = Pattern.compile(regex).matcher(text);
    assertThat(m.find()).as(regex + " in\n" + text).isTrue();
    return m.group(1);
  }
}
