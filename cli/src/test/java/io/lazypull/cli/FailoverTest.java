package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Posix;
import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The seed's test: "a user process reads files through on-demand reading, and at the same time
 * we kill the daemon constantly; the file read is consistent with the original and the user
 * does not notice". A 1 GiB image (a real JDK plus random data) in S3 (S3Proxy, SigV4),
 * served through the fuse-shim; readers hash every file while the daemon is SIGKILLed again
 * and again and started again with the same command, as a supervisor would.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FailoverTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
  private static final int MIN_KILLS = 60;

  @TempDir static Path tmp;
  S3ProxyLauncher s3;
  String uri;
  Map<String, String> creds;
  Path src;
  String expectedSums;
  MkfsResult image;

  @BeforeAll
  void buildAndPush() throws Exception {
    Requirements.assumeFuse();
    src = Files.createDirectories(tmp.resolve("src"));
    // Real data nobody here wrote, plus random data up to 1 GiB.
    run(List.of("cp", "-a", JDK.toString(), src.resolve("jdk").toString()));
    long have = du(src);
    Random rnd = new Random(2026);
    byte[] buf = new byte[1 << 20];
    Path rand = Files.createDirectories(src.resolve("random"));
    for (int f = 0; have < (1L << 30); f++) {
      int mib = 1 + rnd.nextInt(48);
      try (OutputStream out = Files.newOutputStream(rand.resolve("r" + f + ".bin"))) {
        for (int i = 0; i < mib; i++) {
          rnd.nextBytes(buf);
          out.write(buf);
        }
      }
      have += (long) mib << 20;
    }
    expectedSums = sums(src);
    Path local = tmp.resolve("local");
    image = Cluster.buildImage(src, local, Layout.CHUNKED);
    s3 = S3ProxyLauncher.start(Files.createDirectories(tmp.resolve("s3")), "lazy", "failover-secret");
    s3.createBucket("images");
    uri = s3.uri("images/failover/");
    creds = Map.of("AWS_ACCESS_KEY_ID", s3.identity, "AWS_SECRET_ACCESS_KEY", s3.credential);
    Child push = Child.lazypull("push", "256m", List.of("push", "--backend", uri,
        local.resolve(image.fsid()).toString(), image.dataBlob().orElseThrow().path().toString())).env(creds).start();
    assertThat(push.process().waitFor()).isZero();
    run(List.of("rm", "-rf", local.toString()));
  }

  @AfterAll
  void stopS3() throws Exception {
    if (s3 != null) {
      s3.close();
    }
  }

  private static long du(Path dir) throws IOException {
    try (var s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }

  /** "sha256  ./path" lines, sorted, for every regular file under {@code dir}. */
  static String sums(Path dir) throws Exception {
    Process p = new ProcessBuilder("bash", "-c", "find . -type f -print0 | sort -z | xargs -0 sha256sum")
        .directory(dir.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor()).isZero();
    return out;
  }

  static void run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).inheritIO().start();
    assertThat(p.waitFor()).as(String.join(" ", cmd)).isZero();
  }

  /** Two readers hash the whole tree (one in reverse order), each writing its sums to a file. */
  List<Process> startReaders(Path mnt) throws IOException {
    List<Process> readers = new ArrayList<>();
    for (String order : List.of("sort -z", "sort -zr")) {
      Path out = tmp.resolve("sums-" + readers.size() + "-" + System.nanoTime());
      readers.add(new ProcessBuilder("bash", "-c", "set -o pipefail; find . -type f -print0 | " + order
          + " | xargs -0 sha256sum | sort -k2 > " + out + "; echo " + out)
          .directory(mnt.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT).start());
    }
    return readers;
  }

  void assertReadersSucceeded(List<Process> readers) throws Exception {
    for (Process r : readers) {
      assertThat(r.waitFor(20, TimeUnit.MINUTES)).isTrue();
      String out = new String(r.getInputStream().readAllBytes()).strip();
      assertThat(r.exitValue()).as("a reader saw an error").isZero();
      List<String> got = Files.readAllLines(Path.of(out));
      List<String> want = expectedSums.lines().sorted((a, b) -> a.substring(66).compareTo(b.substring(66))).toList();
      assertThat(got).isEqualTo(want);
    }
  }

  @Test
  void seed_killTheDaemonAgainAndAgain_withTheHolder_readersNeverNotice() throws Exception {
    Random rnd = new Random(1);
    int kills = 0;
    // Rounds of cold reads (a fresh cluster, empty cache) until enough kills hit live reads.
    for (int round = 0; kills < MIN_KILLS && round < 10; round++) {
      try (Cluster cluster = new Cluster(tmp.resolve("holder-" + round), uri)) {
        cluster.stack.env.putAll(creds);
        cluster.startHolder().startShim().startDaemon();
        Path mnt = cluster.mount(image.fsid());
        List<Process> readers = startReaders(mnt);
        // Kill at a random point 0.2-1.5 s after each daemon starts serving: during OPENs,
        // fetches, between a write and its completion. Restart at once with the same command,
        // as a supervisor would.
        while (readers.stream().anyMatch(Process::isAlive)) {
          Stack.await("daemon " + cluster.stack.daemonStarts, cluster.stack::daemonReady, cluster.stack.daemon);
          Thread.sleep(200 + rnd.nextInt(1300));
          if (readers.stream().noneMatch(Process::isAlive)) {
            break;
          }
          cluster.stack.daemon.kill();
          kills++;
          cluster.stack.launchDaemon();
        }
        assertReadersSucceeded(readers);
        System.err.println("FailoverTest(holder): round " + round + " done, " + kills + " kills so far");
      }
    }
    assertThat(kills).as("kills during reads").isGreaterThanOrEqualTo(MIN_KILLS);
  }
}
