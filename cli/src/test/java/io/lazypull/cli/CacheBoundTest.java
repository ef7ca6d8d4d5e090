package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.shim.CacheBudget;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bounded cache with real processes, FUSE, fanotify and kernel EROFS mounts: a cache bound
 * at 32 MiB (12% of the JDK image) while readers hash every file of two images (the JDK, 259
 * MiB, and 48 MiB of random files), read twice (remounted in between, so the second pass needs
 * what the first one evicted): every digest right, the cache files never hold more than the
 * bound plus one window (sampled from the files themselves every 20 ms), evicted windows fetched
 * again; and the daemon SIGKILLed while eviction runs, then every process SIGKILLed: after the
 * restart the accounting equals the files and nothing is left over.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CacheBoundTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
  private static final long BOUND = 32L << 20;
  private static final long WINDOW = 1L << 20;

  @TempDir static Path tmp;
  Path blobs;
  MkfsResult jdk;
  MkfsResult random;
  String jdkSums;
  String randomSums;

  @BeforeAll
  void images() throws Exception {
    Requirements.assumeFuse();
    blobs = tmp.resolve("backend");
    jdk = Cluster.buildImage(JDK, blobs, Layout.CHUNKED);
    jdkSums = Readers.sums(JDK);
    Path src = Files.createDirectories(tmp.resolve("random-src"));
    Random rnd = new Random(13);
    long total = 0;
    for (int f = 0; total < (48L << 20); f++) {
      int size = 100_000 + rnd.nextInt(6 << 20);
      byte[] b = new byte[size];
      rnd.nextBytes(b);
      try (OutputStream out = Files.newOutputStream(src.resolve("f" + f + ".bin"))) {
        out.write(b);
      }
      total += size;
    }
    random = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    randomSums = Readers.sums(src);
  }

  @Test
  void fuse_twoImagesReadTwice_rightDigests_neverAboveTheBound() throws Exception {
    readTwiceUnderTheBound(Frontends.FUSE, List.of());
  }

  @Test
  void fanotify_twoImagesReadTwice_rightDigests_neverAboveTheBound() throws Exception {
    String why = io.lazypull.sys.Fanotify.probePreContent(tmp);
    assertThat(why).as("fanotify pre-content events work here").isNull();
    // A shorter guard than the default 5 s: a fanotify cache of B bytes takes in at most
    // B / guard of new data per second, and the test reads 600 MiB through 32 MiB.
    readTwiceUnderTheBound(Frontends.FANOTIFY, List.of("--evict-guard", "2s"));
  }

  private void readTwiceUnderTheBound(Frontends frontend, List<String> extra) throws Exception {
    try (Cluster cluster = new Cluster(tmp.resolve("bound-" + frontend), "file://" + blobs)) {
      Stack stack = cluster.stack.frontend(frontend);
      stack.shimArgs.addAll(List.of("--cache-size", "32M", "--cache-window", "1M"));
      stack.shimArgs.addAll(extra);
      // The daemon's largest fetch one window (docs/operations.md, for a tight bound): the
      // windows it fetches ahead of a sequential reader (at most two largest fetches per
      // reader) are not reserved by any READ: they land above the bound, and the next READ to
      // settle (or the pass each second) evicts down to it.
      stack.daemonArgs.addAll(List.of("--fetch-size", Long.toString(WINDOW)));
      cluster.startHolder().startShim().startDaemon();
      AtomicLong max = new AtomicLong();
      int readers = 0;
      AtomicBoolean sampling = new AtomicBoolean(true);
      Thread sampler = sampler(stack.cacheDir, max, sampling);
      try {
        for (int pass = 0; pass < 2; pass++) {
          Path a = cluster.mount(jdk.fsid());
          Path b = cluster.mount(random.fsid());
          List<Process> ra = Readers.start(a, tmp, Readers.BOTH_WAYS);
          List<Process> rb = Readers.start(b, tmp, Readers.FORWARD);
          readers = ra.size() + rb.size();
          Readers.assertAllMatch(ra, jdkSums);
          Readers.assertAllMatch(rb, randomSums);
          stack.umount(a);
          stack.umount(b);
          if (frontend == Frontends.FUSE) {
            dropFusePageCache(stack);
          }
        }
      } finally {
        sampling.set(false);
        sampler.join(10_000);
      }
      System.err.println("CacheBoundTest(" + frontend + "): the cache files held at most " + max.get() + " bytes");
      assertThat(max.get()).as("bytes in the cache files, sampled (%d readers)", readers)
          .isLessThanOrEqualTo(BOUND + WINDOW + readers * 2 * WINDOW);
      JsonNode cache = status(stack).path("cache");
      assertThat(cache.path("limitBytes").asLong()).isEqualTo(BOUND);
      JsonNode stats = cache.path("stats");
      // 600 MiB read through 32 MiB: most of it was evicted, and the second pass fetched it again.
      assertThat(stats.path("evictedBytes").asLong()).isGreaterThan(400L << 20);
      assertThat(stats.path("refetchedWindows").asLong()).as("evicted windows fetched again").isGreaterThan(100);
      assertThat(stats.path("overBound").asLong()).as("reads that had to go over the bound").isZero();
      assertAccountingMatchesTheFiles(stack);
    }
  }

  @Test
  void daemonKilledDuringEviction_thenEverythingKilled_nothingLostOrLeaked() throws Exception {
    Path dir = tmp.resolve("kills");
    List<Path> targets = new ArrayList<>();
    try (Cluster cluster = new Cluster(dir, "file://" + blobs)) {
      Stack stack = cluster.stack;
      stack.shimArgs.addAll(List.of("--cache-size", "32M"));
      cluster.startHolder().startShim().startDaemon();
      Path a = cluster.mount(jdk.fsid());
      Path b = cluster.mount(random.fsid());
      targets.addAll(List.of(a, b));
      List<Process> readers = new ArrayList<>(Readers.start(a, tmp, Readers.BOTH_WAYS));
      List<Process> rb = Readers.start(b, tmp, Readers.FORWARD);
      readers.addAll(rb);
      // Every READ past the first 32 MiB evicts: each kill lands while eviction runs.
      int kills = cluster.killDaemonWhileReading(readers, new Random(7), 1500, 8);
      Readers.assertAllMatch(readers.subList(0, 2), jdkSums);
      Readers.assertAllMatch(rb, randomSums);
      assertThat(kills).isGreaterThanOrEqualTo(3);
      JsonNode cache = status(stack).path("cache");
      assertThat(cache.path("stats").path("evictedBytes").asLong()).isGreaterThan(100L << 20);
      assertAccountingMatchesTheFiles(stack);

      // Now every process at once, in the middle of reads and evictions.
      stack.umount(a);
      dropFusePageCache(stack);
      a = cluster.mount(jdk.fsid());
      targets.set(0, a);
      List<Process> doomed = Readers.start(a, tmp, Readers.BOTH_WAYS);
      Thread.sleep(1500);
      stack.daemon.kill();
      stack.shim.kill();
      stack.holder.kill();
      for (Process p : doomed) {
        p.waitFor(); // they get errors now: the mount died with the shim
      }
    }
    for (Path t : targets) {
      Mounts.unmountOrDetach(t);
    }
    // A new stack on the same directory measures the cache again.
    try (Cluster again = new Cluster(dir, "file://" + blobs)) {
      again.stack.shimArgs.addAll(List.of("--cache-size", "32M"));
      again.startHolder().startShim().startDaemon();
      assertAccountingMatchesTheFiles(again.stack);
      assertThat(CacheBudget.measure(again.stack.cacheDir)).isLessThanOrEqualTo(BOUND + WINDOW);
      try (Stream<Path> left = Files.list(again.stack.state.resolve("tmp"))) {
        assertThat(left.map(p -> p.getFileName().toString()).toList()).as("daemon temp dirs left")
            .containsOnly(Long.toString(again.stack.daemon.pid()));
      }
      Path a = again.mount(jdk.fsid());
      assertThat(Readers.sums(a)).as("the JDK read once more").isEqualTo(jdkSums);
    }
  }

  /** The shim's status: what it accounts equals what the files hold, blob for blob. */
  static void assertAccountingMatchesTheFiles(Stack stack) throws Exception {
    JsonNode cache = null;
    for (int i = 0; i < 50; i++) { // the pass after the last READ settles: at most a second
      cache = status(stack).path("cache");
      if (cache.path("bytes").asLong() == CacheBudget.measure(stack.cacheDir)) {
        break;
      }
      Thread.sleep(200);
    }
    assertThat(cache.path("bytes").asLong()).as("accounted bytes").isEqualTo(CacheBudget.measure(stack.cacheDir));
    List<String> files;
    try (Stream<Path> s = Files.walk(stack.cacheDir)) {
      files = s.filter(Files::isRegularFile).map(p -> p.getFileName().toString()).sorted().toList();
    }
    List<String> accounted = new ArrayList<>();
    for (JsonNode blob : cache.path("blobs")) {
      accounted.add(blob.path("blob").asText());
      Path f = stack.cacheDir.resolve("erofs," + blob.path("domain").asText()).resolve(blob.path("blob").asText());
      assertThat(blob.path("cachedBytes").asLong()).as("cached bytes of %s", f).isEqualTo(CacheBudget.measure(f));
    }
    assertThat(accounted.stream().sorted().toList()).as("the blobs accounted are the cache files").isEqualTo(files);
  }

  static JsonNode status(Stack stack) throws Exception {
    return OpsViews.json().readTree(OpsClient.request(stack.shimOps, "GET", "/status", 10_000));
  }

  /**
   * Drops the page cache of the shim's blob files (keep_cache keeps it across opens), so that a
   * second pass reads through the shim again. Only those files: never the machine's caches.
   */
  static void dropFusePageCache(Stack stack) throws Exception {
    Process p = new ProcessBuilder("/usr/bin/python3", "-c",
        "import os,sys\n"
            + "for root, dirs, files in os.walk(sys.argv[1]):\n"
            + "  for f in files:\n"
            + "    fd = os.open(os.path.join(root, f), os.O_RDONLY)\n"
            + "    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n"
            + "    os.close(fd)\n", stack.shimDir.toString()).inheritIO().start();
    assertThat(p.waitFor()).isZero();
  }

  private static Thread sampler(Path cacheDir, AtomicLong max, AtomicBoolean sampling) {
    Thread t = new Thread(() -> {
      while (sampling.get()) {
        try {
          max.accumulateAndGet(CacheBudget.measure(cacheDir), Math::max);
          Thread.sleep(20);
        } catch (Exception e) {
          // a file created or removed while walking: the next sample counts
        }
      }
    }, "cache-sampler");
    t.setDaemon(true);
    t.start();
    return t;
  }
}
