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
  S3Image s3;
  String uri;
  Map<String, String> creds;
  String expectedSums;
  MkfsResult image;

  @BeforeAll
  void buildAndPush() throws Exception {
    Requirements.assumeFuse();
    Path src = Files.createDirectories(tmp.resolve("src"));
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
    expectedSums = Readers.sums(src);
    s3 = S3Image.start(tmp.resolve("s3"), "failover");
    uri = s3.uri;
    creds = s3.creds;
    image = s3.publish(src, Layout.CHUNKED, tmp.resolve("local"));
    run(List.of("rm", "-rf", src.toString()));
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

  static void run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).inheritIO().start();
    assertThat(p.waitFor()).as(String.join(" ", cmd)).isZero();
  }

  List<Process> startReaders(Path mnt) throws IOException {
    return Readers.start(mnt, tmp, Readers.BOTH_WAYS);
  }

  void assertReadersSucceeded(List<Process> readers) throws Exception {
    Readers.assertAllMatch(readers, expectedSums);
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
        kills += cluster.killDaemonWhileReading(readers, rnd, 1500, MIN_KILLS - kills);
        assertReadersSucceeded(readers);
        System.err.println("FailoverTest(holder): round " + round + " done, " + kills + " kills so far");
      }
    }
    assertThat(kills).as("kills during reads").isGreaterThanOrEqualTo(MIN_KILLS);
  }

  @Test
  void crashesInsideTheDaemon_duringOpenFetchAndBetweenWriteAndCompletion_readersNeverNotice() throws Exception {
    try (Cluster cluster = new Cluster(tmp.resolve("crash-points"), uri)) {
      cluster.stack.env.putAll(creds);
      // The daemon halts itself (as SIGKILL would) at these points of the request path: the
      // first three daemons each at the first time they reach one point (so every point is
      // hit, whatever the dice say), the rest at random ones.
      List<String> schedule = List.of("open:1", "fetch:1", "write:1");
      String random = "open:0.2,fetch:0.01,write:0.003";
      cluster.stack.env.put("LAZYPULL_CRASH_AT", schedule.get(0));
      cluster.startHolder().startShim().startDaemon();
      // The supervisor runs from the start: a crash may come while the mount opens its blobs.
      java.util.concurrent.atomic.AtomicInteger restarts = new java.util.concurrent.atomic.AtomicInteger();
      java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
      Thread supervisor = new Thread(() -> {
        while (!done.get() && restarts.get() < 300) {
          try {
            if (!cluster.stack.daemon.isAlive()) {
              int n = restarts.incrementAndGet();
              cluster.stack.env.put("LAZYPULL_CRASH_AT", n < schedule.size() ? schedule.get(n) : random);
              cluster.stack.launchDaemon();
            }
            Thread.sleep(50);
          } catch (Exception e) {
            return;
          }
        }
      }, "supervisor");
      supervisor.start();
      List<Process> readers;
      try {
        Path mnt = cluster.mount(image.fsid());
        readers = startReaders(mnt);
        for (Process r : readers) {
          r.waitFor();
        }
      } finally {
        done.set(true);
        supervisor.join();
      }
      assertReadersSucceeded(readers);
      String log = cluster.daemonLog();
      for (String point : List.of("OPEN", "FETCH", "WRITE")) {
        assertThat(log).as("crashed at " + point).contains("crash point " + point);
      }
      System.err.println("FailoverTest(crash points): " + restarts.get() + " crashes, every digest matched");
    }
  }

  @Test
  void seed_withSystemdsFdStore_readersNeverNotice() throws Exception {
    Random rnd = new Random(2);
    int kills = 0;
    for (int round = 0; kills < MIN_KILLS && round < 10; round++) {
      try (Cluster cluster = new Cluster(tmp.resolve("systemd-" + round), uri);
          FakeSystemd systemd = new FakeSystemd(cluster.stack.run)) {
        cluster.startShim();
        Path log = cluster.stack.dir.resolve("logs/daemon.log");
        int[] starts = {0};
        // The daemon as systemd runs it: no --holder; NOTIFY_SOCKET set; the fd store in LISTEN_FDS.
        java.util.function.Supplier<Path> ready = () -> cluster.stack.run.resolve("ready." + starts[0]);
        java.util.concurrent.Callable<Integer> start = () -> {
          starts[0]++;
          return systemd.start(List.of("daemon", "--device", "shim:" + cluster.stack.shimSock,
              "--backend", uri, "--state-dir", cluster.stack.state.toString(), "--stats-interval", "0",
              "--ready-file", ready.get().toString()), creds, log);
        };
        int pid = start.call();
        awaitFile(ready.get(), pid, log);
        assertThat(systemd.holdsFd()).as("the daemon stored its device with FDSTORE=1").isTrue();
        Path mnt = cluster.mount(image.fsid());
        List<Process> readers = startReaders(mnt);
        while (readers.stream().anyMatch(Process::isAlive) && kills < MIN_KILLS) { // then the readers finish
          Thread.sleep(200 + rnd.nextInt(1300));
          if (readers.stream().noneMatch(Process::isAlive)) {
            break;
          }
          Posix.kill(pid, 9);
          awaitExit(pid);
          kills++;
          pid = start.call(); // Restart=always
          awaitFile(ready.get(), pid, log);
        }
        assertReadersSucceeded(readers);
        Posix.kill(pid, 15);
        awaitExit(pid);
        assertThat(Files.readString(log)).contains("recovered the device fd");
        System.err.println("FailoverTest(systemd): round " + round + " done, " + kills + " kills so far");
      }
    }
    assertThat(kills).as("kills during reads").isGreaterThanOrEqualTo(MIN_KILLS);
  }

  @Test
  void noHolder_killingTheDaemon_givesReadersEio_notAHang() throws Exception {
    try (Cluster cluster = new Cluster(tmp.resolve("no-holder"), uri)) {
      cluster.stack.env.putAll(creds);
      cluster.startShim().startDaemon();
      Path mnt = cluster.mount(image.fsid());
      Process reader = Readers.start(mnt, tmp, Readers.FORWARD).get(0); // ./jdk first, ./random last
      Thread.sleep(1500); // reading is under way
      cluster.stack.daemon.kill();
      assertThat(reader.waitFor(120, TimeUnit.SECONDS)).as("the reader ends (no hang)").isTrue();
      assertThat(reader.exitValue()).as("the reader saw EIO").isNotZero();
      // Later reads of data not cached fail too: the device is dead.
      Path big = Files.list(mnt.resolve("random")).sorted().reduce((a, b) -> b).orElseThrow(); // not reached yet
      assertThat(readOutcome(big)).contains("Input/output error");
    }
  }

  @Test
  void holderKilledToo_everyReadGetsEio_notAHang() throws Exception {
    try (Cluster cluster = new Cluster(tmp.resolve("holder-dies"), uri)) {
      cluster.stack.env.putAll(creds);
      cluster.startHolder().startShim().startDaemon();
      Path mnt = cluster.mount(image.fsid());
      Process reader = Readers.start(mnt, tmp, Readers.FORWARD).get(0); // ./jdk first, ./random last
      Thread.sleep(1500);
      cluster.stack.daemon.kill();
      Thread.sleep(500); // reads now wait for the next daemon, held by the holder...
      assertThat(reader.isAlive()).as("with the holder alive, the reader waits").isTrue();
      cluster.stack.holder.kill(); // ...until the holder dies too: the device is gone
      assertThat(reader.waitFor(120, TimeUnit.SECONDS)).as("the reader ends (no hang)").isTrue();
      assertThat(reader.exitValue()).isNotZero();
      Path big = Files.list(mnt.resolve("random")).sorted().reduce((a, b) -> b).orElseThrow();
      assertThat(readOutcome(big)).contains("Input/output error");
    }
  }

  /** Reads a file through {@code cat}; returns "ok" or its error output. */
  private static String readOutcome(Path file) throws Exception {
    Process p = new ProcessBuilder("cat", file.toString()).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    String err = new String(p.getErrorStream().readAllBytes());
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    return p.exitValue() == 0 ? "ok" : err;
  }

  private static void awaitFile(Path f, int pid, Path log) throws Exception {
    for (int i = 0; i < 1200 && !Files.exists(f); i++) {
      if (!io.lazypull.daemon.failover.HolderServer.isRunning(pid)) {
        List<String> lines = Files.readAllLines(log);
        throw new IOException("daemon pid " + pid + " exited before it was ready; its log ends with:\n"
            + String.join("\n", lines.subList(Math.max(0, lines.size() - 15), lines.size())));
      }
      Thread.sleep(100);
    }
    assertThat(f).exists();
  }

  /** Until the process is gone or a zombie (its fds are closed then, as systemd would see). */
  private static void awaitExit(int pid) throws Exception {
    for (int i = 0; i < 600 && io.lazypull.daemon.failover.HolderServer.isRunning(pid); i++) {
      Thread.sleep(50);
    }
  }
}
