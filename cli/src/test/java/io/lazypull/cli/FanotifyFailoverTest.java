package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Fanotify;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.IOException;
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
 * The seed's test on the fanotify front end: readers hash every file of an image of this JDK
 * in S3 (S3Proxy, SigV4) while the daemon is SIGKILLed about every second of its life and
 * started again with the same command, in cold rounds until 60 kills; a holder keeps the device socket, the relay keeps the pre-content events it
 * read as pending READ requests, and each new daemon adopts the device and writes restore.
 * Every digest must match and no reader may see an error. And the tar-index layout from the
 * same bucket, compared file by file.
 *
 * <pre>
 *   readers -> EROFS -> cache files (FAN_PRE_ACCESS) -> relay (events = pending READs)
 *                                                         ^ device socket, kept by the holder
 *                                   daemon (killed, restarted) --+-- S3Proxy
 * </pre>
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FanotifyFailoverTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
  private static final int MIN_KILLS = 60;

  @TempDir static Path tmp;
  S3Image s3;
  String uri;
  Map<String, String> creds;
  String expectedSums;
  MkfsResult image;

  @BeforeAll
  void buildAndPush() throws Exception {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    // Real data nobody here wrote; cold rounds until enough kills have hit live reads.
    expectedSums = Readers.sums(JDK);
    s3 = S3Image.start(tmp.resolve("s3"), "fanotify");
    uri = s3.uri;
    creds = s3.creds;
    image = s3.publish(JDK, Layout.CHUNKED, tmp.resolve("local"));
  }

  @AfterAll
  void stopS3() throws Exception {
    if (s3 != null) {
      s3.close();
    }
  }

  private List<Process> startReaders(Path mnt) throws IOException {
    return Readers.start(mnt, tmp, Readers.BOTH_WAYS);
  }

  private void assertReadersSucceeded(List<Process> readers) throws Exception {
    Readers.assertAllMatch(readers, expectedSums);
  }

  @Test
  void seed_killTheDaemonAgainAndAgain_withTheHolder_readersNeverNotice() throws Exception {
    Random rnd = new Random(1);
    int kills = 0;
    // Rounds of cold reads (a fresh cache) until enough kills have hit live reads. A round
    // takes 5-8 kills (its reads end sooner as the stack gets faster): 10 rounds once fell one
    // short of 60 with every digest right, so the bound leaves room.
    for (int round = 0; kills < MIN_KILLS && round < 16; round++) {
      Path relayLog;
      try (Cluster cluster = new Cluster(tmp.resolve("round-" + round), uri)) {
        relayLog = cluster.stack.logFile("relay");
        cluster.stack.env.putAll(creds);
        cluster.stack.frontend(Frontends.FANOTIFY);
        cluster.startHolder().startShim().startDaemon();
        Path mnt = cluster.mount(image.fsid());
        List<Process> readers = startReaders(mnt);
        kills += cluster.killDaemonWhileReading(readers, rnd, 1000, MIN_KILLS - kills);
        assertReadersSucceeded(readers);
        if (kills >= MIN_KILLS) {
          // The last round: beyond the digests, every name, mode, size and xattr (warm now).
          TreeDiff.assertSame(JDK, mnt, TreeDiff.options());
        }
      }
      // Stopped (the mount is gone): its last line counts what it did.
      String log = Files.readString(relayLog);
      assertThat(log).doesNotContain("the reader gets EIO").doesNotContain("not one of this relay's cache files");
      String stats = log.lines().filter(l -> l.contains("relay stopped; stats:")).findFirst().orElseThrow();
      assertThat(stats).contains(" 0 denied");
      System.err.println("FanotifyFailoverTest: round " + round + " done, " + kills + " kills so far; "
          + stats.substring(stats.indexOf("stats:")));
    }
    assertThat(kills).as("kills during reads").isGreaterThanOrEqualTo(MIN_KILLS);
  }

  /** The tar-index layout from S3 too: the unmodified GNU tar is the data blob in the bucket. */
  @Test
  void tarIndex_fromS3Proxy_everyFileMatches() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("tarsrc")), false);
    Path tar = TestTrees.gnuTar(src, tmp.resolve("layer.tar"));
    MkfsResult tarImage = s3.publish(tar, Layout.TAR_INDEX, tmp.resolve("tar-local"));
    try (Cluster cluster = new Cluster(tmp.resolve("tar-s3"), uri)) {
      cluster.stack.env.putAll(creds);
      cluster.stack.frontend(Frontends.FANOTIFY);
      cluster.startHolder().startShim().startDaemon();
      Path mnt = cluster.mount(tarImage.fsid());
      // GNU tar does not archive sockets ("socket ignored").
      TreeDiff.assertSame(src, mnt, TreeDiff.options().root(false).ignore(p -> p.equals("dev/sock")));
    }
  }
}
