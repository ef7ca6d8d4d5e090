package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.Errno;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DaemonTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;
  FakeDevice device;
  FakeBlobSource source;
  Daemon daemon;
  ExecutorService loop = Executors.newSingleThreadExecutor();

  @BeforeEach
  void start() throws Exception {
    device = new FakeDevice(tmp);
    source = new FakeBlobSource();
    // wholeBlobMax 1 MiB: "meta" blobs are small, data blobs bigger.
    daemon = new Daemon(device, new Domains(source, Map.of()),
        DaemonConfig.defaults().withFetchSize(256 * 1024).withThreads(4).withWholeBlobMax(MIB)
            .withStateDir(tmp.resolve("state")), BlobIndexReader.NONE);
    loop.submit(() -> {
      daemon.run();
      return null;
    });
  }

  @AfterEach
  void stop() throws Exception {
    daemon.close();
    loop.shutdownNow();
    assertThat(loop.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
  }

  static byte[] random(int size, long seed) {
    byte[] b = new byte[size];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void open_knownBlob_copenWithSize_unknownOrBadCookie_enoent() throws Exception {
    String digest = source.add(random(5000, 1));
    device.open(1, 1, "d", digest);
    FakeDevice.FakeAnonFd missing = device.open(2, 2, "d", "0".repeat(64));
    FakeDevice.FakeAnonFd bad = device.open(3, 3, "d", "not-a-digest");
    assertThat(device.awaitCopen(1)).isEqualTo(5000);
    assertThat(device.awaitCopen(2)).isEqualTo(-Errno.ENOENT);
    assertThat(device.awaitCopen(3)).isEqualTo(-Errno.ENOENT);
    assertThat(missing.closed).isTrue();
    assertThat(bad.closed).isTrue();
    assertThat(daemon.stats().openFailures()).isEqualTo(2);
  }

  @Test
  void open_backendDown_eio() throws Exception {
    source.sizeFailing = true;
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", "b".repeat(64));
    assertThat(device.awaitCopen(1)).isEqualTo(-Errno.EIO);
    assertThat(fd.closed).isTrue();
  }

  @Test
  void read_smallRead_amplifiedToOneWindow_thenNeighbourIsACacheHit() throws Exception {
    byte[] data = random(4 * MIB, 2);
    String digest = source.add(data);
    FakeDevice.FakeAnonFd fd = device.open(1, 7, "d", digest);
    device.awaitCopen(1);

    device.read(10, 7, 8192, 4096);
    device.awaitCompletions(1);
    assertThat(source.fetched).hasSize(1);
    assertThat(source.fetched.get(0)).containsExactly(0, 256 * 1024); // the aligned window
    assertThat(fd.bytes(0, 256 * 1024)).isEqualTo(Arrays.copyOf(data, 256 * 1024));

    device.read(11, 7, 65536, 8192); // same window: already there
    device.awaitCompletions(2);
    assertThat(source.fetched).hasSize(1);
    assertThat(daemon.stats().cacheHits()).isEqualTo(1);
    assertThat(device.completions).containsExactly(10, 11);
  }

  @Test
  void read_concurrentReadsOfOneWindow_shareOneFetch() throws Exception {
    byte[] data = random(2 * MIB, 3);
    String digest = source.add(data);
    device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    source.gate = new CountDownLatch(1);
    for (int i = 0; i < 8; i++) {
      device.read(100 + i, 1, 300_000 + i * 4096L, 4096); // all inside window [256K, 512K)
    }
    // Wait (bounded) until the loop has delivered all eight while the first fetch is held.
    for (int i = 0; i < 1000 && daemon.stats().mergedReads() < 7; i++) {
      Thread.sleep(10);
    }
    source.gate.countDown();
    device.awaitCompletions(8);
    assertThat(source.fetched).hasSize(1);
    assertThat(daemon.stats().mergedReads()).isEqualTo(7);
    assertThat(device.completions).containsExactlyInAnyOrder(100, 101, 102, 103, 104, 105, 106, 107);
  }

  @Test
  void read_spanningWindowsAndTheUnalignedEnd_padsTheLastPageWithZeros() throws Exception {
    byte[] data = random(MIB + 100 + 3 * 256 * 1024, 4);
    String digest = source.add(data);
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    long lastPage = (data.length / 4096) * 4096L;
    device.read(5, 1, 200_000 & ~4095, lastPage + 4096 - (200_000 & ~4095));
    device.awaitCompletions(1);
    byte[] got = fd.bytes(0, (int) lastPage + 4096);
    assertThat(Arrays.copyOfRange(got, 200_000 & ~4095, data.length))
        .isEqualTo(Arrays.copyOfRange(data, 200_000 & ~4095, data.length));
    for (int i = data.length; i < got.length; i++) {
      assertThat(got[i]).isZero();
    }
    assertThat(daemon.stats().readFailures()).isZero();
  }

  @Test
  void read_backendFails_completedWithoutData() throws Exception {
    byte[] data = random(2 * MIB, 5);
    String digest = source.add(data);
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    source.failing = true;
    device.read(9, 1, 0, 4096);
    device.awaitCompletions(1);
    assertThat(device.completions).containsExactly(9); // completed: the reader gets EIO, no hang
    assertThat(fd.cached(0, 4096)).isFalse();
    assertThat(daemon.stats().readFailures()).isEqualTo(1);
  }

  @Test
  void read_smallBlob_fetchedWholeAndVerifiedAgainstItsName() throws Exception {
    byte[] meta = random(300_000, 6);
    String digest = source.add(meta);
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    device.read(2, 1, 0, 4096);
    device.awaitCompletions(1);
    assertThat(fd.bytes(0, meta.length)).isEqualTo(meta);
    assertThat(source.bytesFetched()).isEqualTo(meta.length);
  }

  @Test
  void read_smallBlobCorrupted_nothingWritten() throws Exception {
    byte[] meta = random(300_000, 7);
    String digest = source.add(meta);
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    source.corrupting = true;
    device.read(2, 1, 0, 4096);
    device.awaitCompletions(1);
    assertThat(fd.cached(0, 4096)).isFalse();
    assertThat(daemon.stats().integrityFailures()).isEqualTo(1);
    assertThat(daemon.stats().readFailures()).isEqualTo(1);
  }

  @Test
  void close_whileReadInFlight_fdClosedOnlyAfterCompletion() throws Exception {
    byte[] data = random(2 * MIB, 8);
    String digest = source.add(data);
    FakeDevice.FakeAnonFd fd = device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    source.gate = new CountDownLatch(1);
    device.read(3, 1, 0, 4096);
    Thread.sleep(200);
    device.queue.add(new io.lazypull.daemon.device.Request.Close(4, 1));
    Thread.sleep(200);
    assertThat(fd.closed).isFalse();
    source.gate.countDown();
    device.awaitCompletions(1);
    for (int i = 0; i < 100 && !fd.closed; i++) {
      Thread.sleep(10);
    }
    assertThat(fd.closed).isTrue();
    assertThat(device.completions).containsExactly(3);
  }
}
