package io.lazypull.cli.shim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.lazypull.daemon.shim.ShimDevice;
import io.lazypull.shim.fuse.FuseShim;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole shim path on this kernel: the shim mounted with FUSE, a daemon on ShimDevice, and
 * the kernel's EROFS driver mounted (file-backed) on the shim's blob files.
 *
 * <pre>
 *   target/ (EROFS) --reads--> mnt/dom/meta, mnt/dom/blob1 (FUSE) --READ--> TestBlobDaemon
 *                                                             cache/ <--pwrite--'
 * </pre>
 */
class ShimFuseTest {
  @TempDir Path tmp;
  Path mp;
  Path sock;
  Path cacheDir;
  Path target;
  final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
  FuseShim shim;
  TestBlobDaemon daemon;

  @BeforeEach
  void setUp() {
    Requirements.assumeFuse();
    mp = tmp.resolve("mnt");
    sock = tmp.resolve("dev.sock");
    cacheDir = tmp.resolve("cache");
    target = tmp.resolve("target");
  }

  @AfterEach
  void tearDown() throws IOException {
    down();
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      assertThat(m.mountPoint()).as("mounts left behind").doesNotStartWith(tmp.toString());
    }
  }

  void up() throws Exception {
    shim = FuseShim.start(mp, cacheDir, sock, FuseShim.Options.DEFAULT);
    daemon = new TestBlobDaemon(ShimDevice.connect(sock), blobs);
  }

  /** EROFS first, then the daemon and the shim. */
  void down() throws IOException {
    if (Files.isDirectory(target)) {
      Mounts.unmountOrDetach(target);
    }
    if (daemon != null) {
      daemon.close();
      assertThat(daemon.error).as("daemon error").isNull();
      daemon = null;
    }
    if (shim != null) {
      shim.close();
      shim = null;
    }
  }

  static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void blobFiles_readPlainly_andByConcurrentReaders_matchTheirBytes() throws Exception {
    blobs.put("a", random(4 << 20, 1));
    blobs.put("b", "tiny".getBytes());
    blobs.put("empty", new byte[0]);
    up();
    Path dom = mp.resolve("dom");
    assertThat(Files.readAllBytes(dom.resolve("b"))).isEqualTo(blobs.get("b"));
    assertThat(Files.readAllBytes(dom.resolve("empty"))).isEmpty();
    assertThat(Files.size(dom.resolve("a"))).isEqualTo(4 << 20);

    // Cold, four readers at once, random ranges of the same blob.
    byte[] a = blobs.get("a");
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<?>> jobs = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        long seed = t;
        jobs.add(pool.submit(() -> {
          Random r = new Random(seed);
          try (FileChannel ch = FileChannel.open(dom.resolve("a"), StandardOpenOption.READ)) {
            for (int i = 0; i < 40; i++) {
              int off = r.nextInt(a.length);
              int len = Math.min(1 + r.nextInt(300_000), a.length - off);
              ByteBuffer buf = ByteBuffer.allocate(len);
              while (buf.hasRemaining() && ch.read(buf, off + buf.position()) > 0) {
                // read fully
              }
              assertThat(buf.position()).isEqualTo(len);
              assertThat(java.util.Arrays.equals(buf.array(), 0, len, a, off, off + len))
                  .as("reader %d range %d+%d", seed, off, len).isTrue();
            }
          }
          return null;
        }));
      }
      for (Future<?> f : jobs) {
        f.get(60, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
    assertThat(Files.readAllBytes(dom.resolve("a"))).isEqualTo(a);
    assertThat(shim.shim().stats().readFailures()).isZero();
  }

  @Test
  void failedRead_givesTheReaderEio_notAHang() throws Exception {
    blobs.put("bad", random(100_000, 2));
    up();
    daemon.failReads = true;
    assertTimeoutPreemptively(Duration.ofSeconds(30), () ->
        assertThatThrownBy(() -> Files.readAllBytes(mp.resolve("dom/bad")))
            .isInstanceOf(IOException.class).hasMessageContaining("Input/output error"));
    assertThat(daemon.readsOf("bad")).isPositive();
    assertThat(shim.shim().stats().readFailures()).isPositive();
  }

  @Test
  void erofsOnTheShim_everyFileMatches_andCachedRangesSurviveRestarts() throws Exception {
    Requirements.assumeCommand("mkfs.erofs");
    Path src = tmp.resolve("src");
    buildTree(src);
    Path meta = tmp.resolve("meta.img");
    Path blob = tmp.resolve("blob.img");
    Process mkfs = new ProcessBuilder("mkfs.erofs", "--quiet", "--chunksize=65536", "--blobdev=" + blob, meta.toString(),
        src.toString() + "/").redirectErrorStream(true).start();
    String out = new String(mkfs.getInputStream().readAllBytes());
    assertThat(mkfs.waitFor()).as("mkfs.erofs: %s", out).isZero();
    blobs.put("meta", Files.readAllBytes(meta));
    blobs.put("blob1", Files.readAllBytes(blob));
    Map<String, String> expected = digests(src);
    Files.createDirectories(target);

    up();
    Mounts.mountErofs(mp.resolve("dom/meta"), target, List.of(mp.resolve("dom/blob1")));
    // Any user reads through EROFS (cold: the FUSE reads run as that user); raw blobs are root's.
    Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    assertThat(runAsNobody("sha256sum " + target.resolve("dir/nested/deep")))
        .startsWith(expected.get("dir/nested/deep"));
    assertThat(runAsNobody("cat " + mp.resolve("dom/blob1") + " >/dev/null && echo readable || echo denied"))
        .contains("denied");
    assertThat(digests(target)).isEqualTo(expected);
    long firstReads = daemon.reads.size();
    assertThat(firstReads).isPositive();
    assertThat(daemon.readsOf("blob1")).isPositive();
    down();

    // A new shim on the same cache dir, a new daemon: everything comes from the cache files.
    up();
    Mounts.mountErofs(mp.resolve("dom/meta"), target, List.of(mp.resolve("dom/blob1")));
    assertThat(digests(target)).isEqualTo(expected);
    assertThat(daemon.opens.get()).as("the blobs are opened again").isPositive();
    assertThat(daemon.reads).as("but no range is requested again").isEmpty();
    assertThat(shim.shim().stats().readRequests()).isZero();
  }

  @Test
  void failover_daemonKilledAgainAndAgainDuringErofsReads_readersGetTheRightBytes() throws Exception {
    Requirements.assumeCommand("mkfs.erofs");
    Path src = tmp.resolve("src");
    buildTree(src);
    for (int i = 0; i < 6; i++) {
      Files.write(src.resolve("more" + i), random(300_000 + i * 4096, 10 + i));
    }
    Path meta = tmp.resolve("meta.img");
    Path blob = tmp.resolve("blob.img");
    Process mkfs = new ProcessBuilder("mkfs.erofs", "--quiet", "--chunksize=65536", "--blobdev=" + blob, meta.toString(),
        src.toString() + "/").redirectErrorStream(true).start();
    mkfs.getInputStream().readAllBytes();
    assertThat(mkfs.waitFor()).isZero();
    blobs.put("meta", Files.readAllBytes(meta));
    blobs.put("blob1", Files.readAllBytes(blob));
    Map<String, String> expected = digests(src);
    Files.createDirectories(target);

    up();
    daemon.readDelayMillis = 15;
    int holder = io.lazypull.sys.Posix.dup(daemon.deviceFd()); // what 'lazypull holder' keeps
    try {
      Mounts.mountErofs(mp.resolve("dom/meta"), target, List.of(mp.resolve("dom/blob1")));
      java.util.concurrent.CompletableFuture<Map<String, String>> reader =
          java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try {
              return digests(target);
            } catch (Exception e) {
              throw new java.util.concurrent.CompletionException(e);
            }
          });
      int kills = 0;
      while (!reader.isDone() && kills < 20) {
        Thread.sleep(60);
        daemon.crash(); // in-flight READs are lost with it
        kills++;
        Thread.sleep(20);
        daemon = new TestBlobDaemon(ShimDevice.adopt(io.lazypull.sys.Posix.dup(holder)), blobs, true);
        daemon.readDelayMillis = 15;
      }
      daemon.readDelayMillis = 0;
      assertThat(reader.get(60, TimeUnit.SECONDS)).as("after %d kills", kills).isEqualTo(expected);
      assertThat(kills).isPositive();
      assertThat(shim.shim().stats().readFailures()).isZero();
    } finally {
      io.lazypull.sys.Posix.closeQuietly(holder);
    }
  }

  static String runAsNobody(String command) throws Exception {
    Process p = new ProcessBuilder("runuser", "-u", "nobody", "--", "sh", "-c", command)
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    p.waitFor();
    return out;
  }

  /**
   * <pre>
   * src/
   *   empty, small (5 B), page (4096 B), chunk+1 (65537 B), big (700 KB)
   *   dir/nested/deep (200 KB), dir/link -> ../big, emptydir/
   * </pre>
   */
  static void buildTree(Path src) throws IOException {
    Files.createDirectories(src.resolve("dir/nested"));
    Files.createDirectories(src.resolve("emptydir"));
    Files.write(src.resolve("empty"), new byte[0]);
    Files.writeString(src.resolve("small"), "small");
    Files.write(src.resolve("page"), random(4096, 3));
    Files.write(src.resolve("chunk+1"), random(65537, 4));
    Files.write(src.resolve("big"), random(700_000, 5));
    Files.write(src.resolve("dir/nested/deep"), random(200_000, 6));
    Files.createSymbolicLink(src.resolve("dir/link"), Path.of("../big"));
  }

  /** Relative path -> "dir", "link:<target>" or the file's sha256. */
  static Map<String, String> digests(Path root) throws Exception {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        String rel = root.relativize(p).toString();
        if (Files.isSymbolicLink(p)) {
          out.put(rel, "link:" + Files.readSymbolicLink(p));
        } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
          out.put(rel, "dir");
        } else {
          out.put(rel, HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
        }
      }
    }
    return out;
  }
}
