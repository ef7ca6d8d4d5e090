package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The walking path, end to end with real parts: images built by lazypull mkfs, served from a
 * file:// backend by 'lazypull daemon' through 'lazypull shim' (FUSE), mounted by the kernel's
 * EROFS (file-backed, mount(2)), and compared with their sources.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WalkingPathTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");

  @TempDir static Path tmp;
  Path blobs;
  Cluster cluster;

  @BeforeAll
  void start() throws Exception {
    Requirements.assumeFuse();
    blobs = Files.createDirectories(tmp.resolve("backend"));
    cluster = new Cluster(tmp.resolve("cluster"), "file://" + blobs).startHolder().startShim().startDaemon();
  }

  @AfterAll
  void stop() throws Exception {
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void generatedTree_everyTypeAndAttributeMatches() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("gen")), false);
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path mnt = cluster.mount(image.fsid());
    TreeDiff.assertSame(src, mnt, TreeDiff.options());
  }

  @Test
  void realJdk_everyFileMatches_withReadersInParallel() throws Exception {
    MkfsResult image = Cluster.buildImage(JDK, blobs, Layout.CHUNKED);
    Path mnt = cluster.mount(image.fsid());
    // Four processes hash the tree at once while a fifth walks it: concurrent cold reads.
    List<Process> readers = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      readers.add(new ProcessBuilder("bash", "-c",
          "find . -type f -print0 | sort -z | xargs -0 sha256sum > " + tmp.resolve("sums." + i))
          .directory(mnt.toFile()).redirectErrorStream(true).start());
    }
    TreeDiff.assertSame(JDK, mnt, TreeDiff.options());
    for (Process p : readers) {
      assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as(new String(p.getInputStream().readAllBytes())).isZero();
    }
    String first = Files.readString(tmp.resolve("sums.0"));
    assertThat(first.lines().count()).isGreaterThan(100);
    for (int i = 1; i < 4; i++) {
      assertThat(Files.readString(tmp.resolve("sums." + i))).isEqualTo(first);
    }
  }

  @Test
  void oneSmallFileOfABigImage_fetchesOnlyAFewPercentOfTheBlob() throws Exception {
    Path src = Files.createDirectories(tmp.resolve("big"));
    byte[] chunk = new byte[1 << 20];
    Random rnd = new Random(42);
    try (var out = Files.newOutputStream(src.resolve("big.bin"))) {
      for (int i = 0; i < 96; i++) {
        rnd.nextBytes(chunk);
        out.write(chunk);
      }
    }
    Files.writeString(src.resolve("small.txt"), "a few bytes\n");
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    long blobSize = image.dataBlob().orElseThrow().size();
    long before = cluster.stack.cachedBytes();
    Path mnt = cluster.mount(image.fsid());
    assertThat(Files.readString(mnt.resolve("small.txt"))).isEqualTo("a few bytes\n");
    long fetched = cluster.stack.cachedBytes() - before;
    assertThat(fetched).as("bytes cached for one small file").isLessThan(blobSize / 20);
  }

  @Test
  void unknownFsid_mountFailsWithAClearMessage() throws Exception {
    Path target = Files.createDirectories(tmp.resolve("nowhere"));
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream old = System.err;
    int rc;
    System.setErr(new PrintStream(err, true));
    try {
      rc = Main.execute("mount", "--shim", cluster.stack.shimDir.toString(), "--fsid", "ab".repeat(32), target.toString());
    } finally {
      System.setErr(old);
    }
    assertThat(rc).isEqualTo(1);
    assertThat(err.toString()).contains("not found").contains("abab");
  }

  @Test
  void corruptBackend_readerGetsEio_notAHang() throws Exception {
    Path src = Files.createDirectories(tmp.resolve("victim"));
    byte[] data = new byte[3 << 20];
    new Random(7).nextBytes(data);
    Files.write(src.resolve("data.bin"), data);
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path blob = image.dataBlob().orElseThrow().path();
    try (RandomAccessFile f = new RandomAccessFile(blob.toFile(), "rw")) {
      f.seek(1 << 20);
      f.write(new byte[] {1, 2, 3, 4}); // same size, wrong bytes: only the digests can tell
    }
    Path mnt = cluster.mount(image.fsid());
    long start = System.nanoTime();
    assertThatThrownBy(() -> Files.readAllBytes(mnt.resolve("data.bin")))
        .isInstanceOf(IOException.class).hasMessageContaining("Input/output error");
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(60));
    assertThat(cluster.daemonLog()).contains("sha256 mismatch");
  }

  @Test
  void tarIndexLayout_theUnmodifiedTarIsTheDataBlob() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("tarsrc")), false);
    Path tar = TestTrees.gnuTar(src, tmp.resolve("layer.tar"));
    MkfsResult image = Cluster.buildImage(tar, blobs, Layout.TAR_INDEX);
    assertThat(Files.mismatch(image.dataBlob().orElseThrow().path(), tar)).isEqualTo(-1);
    Path mnt = cluster.mount(image.fsid());
    // GNU tar does not archive sockets ("socket ignored").
    TreeDiff.assertSame(src, mnt, TreeDiff.options().root(false).ignore(p -> p.equals("dev/sock")));
  }
}
