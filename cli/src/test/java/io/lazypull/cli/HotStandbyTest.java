package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.daemon.failover.HolderClient;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.testing.Requirements;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * A standby daemon, started and waiting on the holder, takes over when the active one is
 * upgraded away ('lazypull upgrade') or killed; the readers in the middle of a cold read of a
 * real JDK get the right bytes throughout.
 */
class HotStandbyTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");

  @TempDir Path tmp;

  @Test
  void upgradeThenKill_standbysTakeOver_readersGetTheRightBytes() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend");
    MkfsResult image = Cluster.buildImage(JDK, blobs, Layout.CHUNKED);
    String expected = Readers.sums(JDK);
    try (Cluster cluster = new Cluster(tmp.resolve("c"), "file://" + blobs)) {
      // Small fetches keep the daemon busy for the whole read.
      cluster.stack.daemonArgs.addAll(List.of("--fetch-size", "65536", "--threads", "2"));
      cluster.startHolder().startShim().startDaemon();
      Child active = cluster.stack.daemon;
      Path mnt = cluster.mount(image.fsid());
      Process reader = new ProcessBuilder("bash", "-c",
          "set -o pipefail; find . -type f -print0 | sort -z | xargs -0 sha256sum")
          .directory(mnt.toFile()).start();
      StringBuilder got = new StringBuilder();
      Thread collect = new Thread(() -> {
        try {
          got.append(new String(reader.getInputStream().readAllBytes()));
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      });
      collect.start();

      // 1. Upgrade: a standby waits; 'lazypull upgrade' hands the device over without a kill.
      Child standby = cluster.stack.startStandby();
      upgrade(cluster, active);
      assertThat(active.process().waitFor(60, TimeUnit.SECONDS)).as("the old daemon exits").isTrue();
      assertThat(active.exitValue()).as("and it exits cleanly").isZero();

      // 2. Crash: the new active daemon is SIGKILLed; the next standby takes over.
      Child standby2 = cluster.stack.startStandby();
      standby.kill();
      Thread.sleep(1000);
      assertThat(standby2.isAlive()).isTrue();

      assertThat(reader.waitFor(10, TimeUnit.MINUTES)).isTrue();
      collect.join();
      assertThat(reader.exitValue()).as("the reader saw no error").isZero();
      assertThat(got.toString()).isEqualTo(expected);
      String log = cluster.daemonLog();
      assertThat(log).contains("hand-over requested");
      assertThat(log.split("took over the device", -1).length - 1).as("two take-overs").isEqualTo(2);
      cluster.stack.daemon = standby2; // stopped with the cluster
    }
  }

  /** Runs 'lazypull upgrade'; if it fails, the failure says what the holder and the daemons saw. */
  private static void upgrade(Cluster cluster, Child active) throws Exception {
    StringWriter err = new StringWriter();
    CommandLine cl = Main.newCommandLine();
    cl.setErr(new PrintWriter(err));
    int rc = cl.execute("upgrade", "--holder", cluster.stack.holderSock.toString());
    if (rc != 0) {
      String status;
      try (HolderClient c = HolderClient.connect(cluster.stack.holderSock)) {
        status = c.status();
      }
      List<String> log = cluster.daemonLog().lines().toList();
      assertThat(rc).as("upgrade said: %s; holder now: %s; the old daemon %s; daemon log tail:%n%s", err, status,
          active.isAlive() ? "runs" : "exited " + active.exitValue(),
          String.join("\n", log.subList(Math.max(0, log.size() - 40), log.size()))).isZero();
    }
  }
}
