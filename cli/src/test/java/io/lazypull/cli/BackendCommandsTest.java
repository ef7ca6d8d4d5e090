package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.backend.Digests;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code lazypull fetch / stat / push} through {@link Main#execute}, against a file:// directory
 * and against S3Proxy (SigV4; credentials through the AWS SDK's system properties, as the
 * default chain finds them).
 */
class BackendCommandsTest {
  @TempDir static Path dir;
  static io.lazypull.backend.loopback.S3ProxyServer s3;
  static String secret = UUID.randomUUID().toString();
  static byte[] data;
  static Path file;
  static String hex;

  /** What one run printed and returned. */
  record Run(int code, byte[] out, String err) {
    String text() {
      return new String(out, StandardCharsets.UTF_8);
    }
  }

  @BeforeAll
  static void setUp() throws Exception {
    data = new byte[3 * 1024 * 1024 + 5];
    new SplittableRandom(7).nextBytes(data);
    file = Files.write(dir.resolve("layer.tar"), data);
    hex = Digests.sha256Hex(file);
    s3 = io.lazypull.backend.loopback.S3ProxyServer.start(Files.createDirectories(dir.resolve("s3")), "cli-test", secret);
    s3.createBucket("cli");
    System.setProperty("aws.accessKeyId", "cli-test");
    System.setProperty("aws.secretAccessKey", secret);
  }

  @AfterAll
  static void tearDown() throws Exception {
    System.clearProperty("aws.accessKeyId");
    System.clearProperty("aws.secretAccessKey");
    if (s3 != null) {
      s3.close();
    }
  }

  static synchronized Run run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(out, true));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      int code = Main.execute(args);
      System.out.flush();
      return new Run(code, out.toByteArray(), err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  static String fileBackend() throws Exception {
    return Files.createDirectories(dir.resolve("store")).toUri().toString();
  }

  @Test
  void push_stat_fetch_throughAFileBackend() throws Exception {
    String backend = fileBackend();
    Run push = run("push", "--backend", backend, file.toString());
    assertThat(push.code()).as(push.err()).isZero();
    assertThat(push.text()).isEqualTo("sha256:" + hex + System.lineSeparator());

    Run stat = run("stat", "-b", backend, "sha256:" + hex);
    assertThat(stat.code()).as(stat.err()).isZero();
    assertThat(stat.text().trim()).isEqualTo(Integer.toString(data.length));

    Run whole = run("fetch", "-b", backend, hex);
    assertThat(whole.code()).as(whole.err()).isZero();
    assertThat(whole.out()).isEqualTo(data);

    Run range = run("fetch", "-b", backend, hex, "--offset", "1000000", "--length", "128K");
    assertThat(range.code()).as(range.err()).isZero();
    assertThat(range.out()).isEqualTo(Arrays.copyOfRange(data, 1_000_000, 1_000_000 + 131072));

    Run tail = run("fetch", "-b", backend, hex, "--offset", Integer.toString(data.length - 10));
    assertThat(tail.out()).isEqualTo(Arrays.copyOfRange(data, data.length - 10, data.length));

    Path out = dir.resolve("fetched");
    Run toFile = run("fetch", "-b", backend, hex, "-o", out.toString());
    assertThat(toFile.code()).as(toFile.err()).isZero();
    assertThat(Files.readAllBytes(out)).isEqualTo(data);
  }

  @Test
  void fetch_withAChunkDigest_writesOnlyMatchingBytes() throws Exception {
    String backend = fileBackend();
    run("push", "-b", backend, file.toString());
    String good = Digests.sha256Hex(ByteBuffer.wrap(data, 4096, 4096));
    Run ok = run("fetch", "-b", backend, hex, "--offset", "4096", "--length", "4096",
        "--chunk-sha256", good);
    assertThat(ok.code()).as(ok.err()).isZero();
    assertThat(ok.out()).isEqualTo(Arrays.copyOfRange(data, 4096, 8192));
    Run bad = run("fetch", "-b", backend, hex, "--offset", "4097", "--length", "4096",
        "--chunk-sha256", good);
    assertThat(bad.code()).isEqualTo(1);
    assertThat(bad.out()).isEmpty();
    assertThat(bad.err()).contains("lazypull fetch: error: ").contains("sha256 mismatch");
  }

  @Test
  void fetch_ofATamperedBlob_writesNothingToStdout() throws Exception {
    Path store = Files.createDirectories(dir.resolve("tampered"));
    byte[] wrong = data.clone();
    wrong[data.length / 2] ^= 1; // same size, one bit off
    Files.write(store.resolve(hex), wrong);
    Run whole = run("fetch", "-b", store.toUri().toString(), hex);
    assertThat(whole.code()).isEqualTo(1);
    assertThat(whole.out()).as("bytes on stdout").isEmpty();
    assertThat(whole.err()).contains("sha256 mismatch for sha256:" + hex);
    assertThat(whole.err().strip()).doesNotContain("\n");
    assertThat(Files.list(Path.of(System.getProperty("java.io.tmpdir")))
        .filter(f -> f.getFileName().toString().startsWith(".lazypull-fetch-"))).as("temporary files left").isEmpty();
  }

  @Test
  void fetch_withImage_checksEveryPieceBeforeWritingIt() throws Exception {
    Path src = Files.createDirectories(dir.resolve("image-src"));
    byte[] content = new byte[5 * 65536 + 123];
    new SplittableRandom(11).nextBytes(content);
    Files.write(src.resolve("file"), content);
    Path store = Files.createDirectories(dir.resolve("image-store"));
    io.lazypull.erofs.MkfsResult image = io.lazypull.erofs.Mkfs.builder()
        .layout(io.lazypull.erofs.Layout.CHUNKED).chunkSize(65536).pieceSize(65536).blobDir(store).build()
        .build(src, dir.resolve("image.meta"));
    Files.copy(image.image(), store.resolve(image.fsid()));
    String blob = image.dataBlob().orElseThrow().sha256Hex();
    byte[] good = Files.readAllBytes(store.resolve(blob));
    String backend = store.toUri().toString();

    Run range = run("fetch", "-b", backend, blob, "--image", image.fsid(), "--offset", "70000", "--length", "100000");
    assertThat(range.code()).as(range.err()).isZero();
    assertThat(range.out()).isEqualTo(Arrays.copyOfRange(good, 70000, 170000));

    byte[] wrong = good.clone();
    wrong[3 * 65536 + 7] ^= 1; // piece 3
    Files.write(store.resolve(blob), wrong);
    Run bad = run("fetch", "-b", backend, blob, "--image", image.fsid(), "--offset", "200000", "--length", "10");
    assertThat(bad.code()).isEqualTo(1);
    assertThat(bad.out()).isEmpty();
    assertThat(bad.err()).contains("piece 3 [196608, 262144)").contains("not the blob this image was built with");
    Run all = run("fetch", "-b", backend, blob, "--image", image.fsid());
    assertThat(all.code()).isEqualTo(1);
    assertThat(all.out().length).as("stops before piece 3").isLessThanOrEqualTo(3 * 65536);
    assertThat(all.out()).as("only verified bytes").isEqualTo(Arrays.copyOf(good, all.out().length));
    Run unverified = run("fetch", "-b", backend, blob, "--offset", "200000", "--length", "10");
    assertThat(unverified.code()).isZero(); // without a known digest a range is what the backend returns

    Run notInImage = run("fetch", "-b", backend, image.fsid(), "--image", image.fsid(), "--length", "10");
    assertThat(notInImage.code()).isEqualTo(1);
    assertThat(notInImage.err()).contains("is not in its blob index");
  }

  @Test
  void errors_areOneLine_withTheRightExitCode() throws Exception {
    String backend = fileBackend();
    String missing = "0".repeat(64);
    Run notFound = run("stat", "-b", backend, missing);
    assertThat(notFound.code()).isEqualTo(1);
    assertThat(notFound.err().trim()).isEqualTo("lazypull stat: error: file://" + dir.resolve("store")
        + ": size sha256:" + missing + ": not found");

    Run badDigest = run("stat", "-b", backend, "sha256:xyz");
    assertThat(badDigest.code()).isEqualTo(2);
    assertThat(badDigest.err()).contains("not a sha256 digest");

    Run badScheme = run("stat", "-b", "ftp://host/x", hex);
    assertThat(badScheme.code()).isEqualTo(2);
    assertThat(badScheme.err()).contains("unsupported backend URI scheme 'ftp'");

    run("push", "-b", backend, file.toString());
    Run pastEnd = run("fetch", "-b", backend, hex, "--offset", Integer.toString(data.length),
        "--length", "10");
    assertThat(pastEnd.code()).isEqualTo(1);
    assertThat(pastEnd.err()).contains("is at or past the end").contains(data.length + " bytes");

    Run noFile = run("push", "-b", backend, dir.resolve("nope").toString());
    assertThat(noFile.code()).isEqualTo(1);
    assertThat(noFile.err()).contains("no such file or directory");
  }

  @Test
  void push_ofAFileWhoseContentDoesNotMatchItsName_uploadsNothing() throws Exception {
    Path store = Files.createDirectories(dir.resolve("push-store"));
    Files.write(store.resolve(hex), data); // the real blob is there already
    Path local = Files.createDirectories(dir.resolve("push-local"));
    byte[] damaged = data.clone();
    damaged[12345] ^= 1;
    Path misnamed = Files.write(local.resolve(hex), damaged); // same name, same size
    Path other = Files.write(local.resolve("other"), "other".getBytes(StandardCharsets.UTF_8));
    Run r = run("push", "-b", store.toUri().toString(), other.toString(), misnamed.toString());
    assertThat(r.code()).isEqualTo(1);
    assertThat(r.err().strip()).doesNotContain("\n")
        .contains(misnamed + " is named like the blob sha256:" + hex)
        .contains("its content has sha256:" + Digests.sha256Hex(ByteBuffer.wrap(damaged)))
        .contains("nothing uploaded");
    assertThat(r.out()).isEmpty();
    try (var files = Files.list(store)) {
      assertThat(files.map(f -> f.getFileName().toString()).toList()).containsExactly(hex);
    }
    Run good = run("push", "-b", store.toUri().toString(), file.toString());
    assertThat(good.code()).as(good.err()).isZero();
  }

  @Test
  void numericOptions_outOfRange_areOneLineUsageErrors() throws Exception {
    String backend = fileBackend();
    String huge = "99999999999999999999999";
    List<List<String>> commands = List.of(
        List.of("fetch", "-b", backend, hex, "--length", huge),
        List.of("fetch", "-b", backend, hex, "--length", "99999999999T"),
        List.of("fetch", "-b", backend, hex, "--offset", huge),
        List.of("fetch", "-b", backend, hex, "--timeout", huge + "s"),
        List.of("fetch", "-b", backend, hex, "--timeout", "9999999999999999h"),
        List.of("fetch", "-b", backend, hex, "--retries", huge),
        List.of("push", "-b", backend, "--part-size", huge, file.toString()),
        List.of("push", "-b", backend, "--multipart-threshold", "9999999999G", file.toString()),
        List.of("mkfs", "--layout", "chunked", "--chunk-size", huge, dir.toString(), dir.resolve("x").toString()),
        List.of("mkfs", "--mtime", huge, dir.toString(), dir.resolve("x").toString()));
    for (List<String> args : commands) {
      Run r = run(args.toArray(String[]::new));
      assertThat(r.code()).as(String.join(" ", args) + ": " + r.err()).isEqualTo(2);
      assertThat(r.err()).as(String.join(" ", args)).doesNotContain("Exception")
          .containsPattern("Invalid value for option '--[a-z-]+': '[0-9A-Za-z]+' is (too|not)");
    }
    run("push", "-b", backend, file.toString());
    assertThat(run("fetch", "-b", backend, hex, "--length", "1KiB").out()).hasSize(1024);
  }

  @Test
  void push_stat_fetch_throughS3Proxy_withMultipart() throws Exception {
    String backend = s3.uri("cli/layers");
    Run push = run("push", "-b", backend, "--multipart-threshold", "2M", "--part-size", "5M",
        file.toString());
    assertThat(push.code()).as(push.err()).isZero();
    assertThat(push.text().trim()).isEqualTo("sha256:" + hex);
    assertThat(push.err()).contains("uploaded");

    Run again = run("push", "-b", backend, file.toString());
    assertThat(again.err()).contains("already there");

    Run stat = run("stat", "-b", backend, hex, "0".repeat(63) + "1");
    assertThat(stat.code()).isEqualTo(1); // the second one is missing
    assertThat(stat.text()).startsWith(data.length + " sha256:" + hex);

    Run range = run("fetch", "-b", backend, hex, "--offset", "3M", "--length", "1M");
    assertThat(range.code()).as(range.err()).isZero();
    assertThat(range.out()).isEqualTo(Arrays.copyOfRange(data, 3 << 20, data.length));
  }

  @Test
  void wrongS3Secret_isOneClearLine_withoutTheSecret() {
    System.setProperty("aws.secretAccessKey", "wrong-" + secret);
    try {
      Run r = run("stat", "-b", s3.uri("cli/layers"), hex);
      assertThat(r.code()).isEqualTo(1);
      assertThat(r.err().lines().count()).isEqualTo(1);
      assertThat(r.err()).contains("HTTP 403").contains("s3://cli/layers/").doesNotContain(secret);
    } finally {
      System.setProperty("aws.secretAccessKey", secret);
    }
  }
}
