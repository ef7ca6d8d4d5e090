package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.daemon.device.Request;
import io.lazypull.sys.Errno;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's bounds on a backend that does not answer: a READ is completed (without data) at
 * the read timeout while its fetch goes on, and once a backend failed, the READs and OPENs that
 * need it fail at once until a probe gets an answer.
 */
class ReadTimeoutTest {
  private static final int MIB = 1 << 20;
  private static final int WINDOW = 256 * 1024;

  @TempDir Path tmp;
  FakeDevice device;
  FakeBlobSource source;
  Daemon daemon;
  ExecutorService loop = Executors.newSingleThreadExecutor();

  @BeforeEach
  void start() throws Exception {
    device = new FakeDevice(tmp);
    source = new FakeBlobSource();
    daemon = new Daemon(device, new Domains(source, Map.of()),
        DaemonConfig.defaults().withFetchSize(WINDOW).withThreads(4).withWholeBlobMax(MIB)
            .withStateDir(tmp.resolve("state")).withReadTimeout(Duration.ofMillis(300)), BlobIndexReader.NONE);
    loop.submit(() -> {
      daemon.run();
      return null;
    });
  }

  @AfterEach
  void stop() throws Exception {
    CountDownLatch g = source.gate;
    if (g != null) {
      g.countDown();
    }
    daemon.close();
    loop.shutdownNow();
    assertThat(loop.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
  }

  private byte[] openBlob(int objectId, long seed) throws Exception {
    byte[] data = new byte[2 * MIB];
    new Random(seed).nextBytes(data);
    String digest = source.add(data);
    device.open(objectId, objectId, "d", digest);
    assertThat(device.awaitCopen(objectId)).isEqualTo(data.length);
    return data;
  }

  private static void await(String what, BooleanSupplier condition) throws InterruptedException {
    for (int i = 0; i < 3000 && !condition.getAsBoolean(); i++) { // 30 s: a hang guard
      Thread.sleep(10);
    }
    assertThat(condition.getAsBoolean()).as(what).isTrue();
  }

  private static boolean cached(FakeDevice.FakeAnonFd fd, long start, long end) {
    try {
      return fd.cached(start, end);
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void read_backendStalls_completedWithoutDataAtTheReadTimeout_thenTheFetchFillsTheCache() throws Exception {
    byte[] data = openBlob(1, 1);
    FakeDevice.FakeAnonFd fd = device.fds.get(1);
    source.gate = new CountDownLatch(1); // the backend holds every request
    device.read(10, 1, 8192, 4096);
    device.awaitCompletions(1); // before the read timeout existed: never
    assertThat(fd.cached(8192, 8192 + 4096)).isFalse();
    assertThat(daemon.stats().readTimeouts()).isEqualTo(1);
    assertThat(daemon.stats().readFailures()).isEqualTo(1);
    assertThat(daemon.stats().backendOutages()).isEqualTo(1);

    source.gate.countDown(); // it answers after all: the fetch that went on fills the cache
    await("the background fetch wrote its window", () -> cached(fd, 0, WINDOW));
    assertThat(fd.bytes(0, WINDOW)).isEqualTo(Arrays.copyOf(data, WINDOW));
    device.read(11, 1, 8192, 4096);
    device.awaitCompletions(2);
    assertThat(daemon.stats().cacheHits()).isEqualTo(1);
    assertThat(source.fetched).hasSize(1);
  }

  @Test
  void read_backendDown_laterReadsAndOpensFailAtOnce_andWorkAgainOnceAProbeIsAnswered() throws Exception {
    byte[] data = openBlob(1, 2);
    FakeDevice.FakeAnonFd fd = device.fds.get(1);
    source.failing = true;
    device.read(10, 1, 0, 4096);
    device.awaitCompletions(1);
    assertThat(daemon.stats().backendOutages()).isEqualTo(1);

    device.read(11, 1, MIB, 4096); // another window: would be a fetch, fails at once instead
    device.awaitCompletions(2);
    assertThat(daemon.stats().failedFast()).isEqualTo(1);
    assertThat(fd.cached(MIB, MIB + 4096)).isFalse();
    String other = source.add(new byte[] {1, 2, 3});
    device.open(2, 2, "d", other); // its size is not known: needs the backend, fails at once
    assertThat(device.awaitCopen(2)).isEqualTo(-Errno.EIO);
    assertThat(daemon.stats().failedFast()).isEqualTo(2);
    assertThat(source.sizeCalls.get()).as("no size asked of a backend that is down").isEqualTo(1);

    source.failing = false; // back: a probe (after 1 s) closes the breaker, then reads work
    int[] msg = {12};
    await("a READ succeeds again", () -> {
      try {
        device.read(msg[0], 1, MIB, 4096);
        device.awaitCompletions(msg[0] - 9);
        msg[0]++;
        if (cached(fd, MIB, MIB + 4096)) {
          return true;
        }
        Thread.sleep(100);
        return false;
      } catch (InterruptedException e) {
        throw new AssertionError(e);
      }
    });
    assertThat(fd.bytes(MIB, WINDOW)).isEqualTo(Arrays.copyOfRange(data, MIB, MIB + WINDOW));
    assertThat(daemon.stats().backendOutages()).isEqualTo(1);
  }

  @Test
  void close_afterItsReadTimedOut_theObjectsFdStaysOpenUntilItsFetchEnds() throws Exception {
    openBlob(1, 3);
    FakeDevice.FakeAnonFd fd = device.fds.get(1);
    source.gate = new CountDownLatch(1);
    device.read(10, 1, 0, 4096);
    device.awaitCompletions(1);
    device.queue.add(new Request.Close(11, 1));
    await("the CLOSE was handled", () -> daemon.stats().closes() == 1);
    // The fetch may still write: closing the fd now would let it write to whatever file
    // reuses the fd number.
    assertThat(fd.closed).isFalse();
    source.gate.countDown();
    await("the fd closes once the fetch ended", () -> fd.closed);
  }

  @Test
  void read_mergedOntoAFetchStillRunning_hasADeadlineOfItsOwn() throws Exception {
    openBlob(1, 4);
    source.gate = new CountDownLatch(1);
    device.read(10, 1, 0, 4096);
    device.read(11, 1, 4096, 4096); // same window, before the first deadline: waits for the same fetch
    device.awaitCompletions(2);
    assertThat(daemon.stats().mergedReads()).isEqualTo(1);
    assertThat(daemon.stats().readTimeouts()).isEqualTo(2);
    source.gate.countDown();
    await("the one fetch ended", () -> source.fetched.size() == 1);
  }
}
