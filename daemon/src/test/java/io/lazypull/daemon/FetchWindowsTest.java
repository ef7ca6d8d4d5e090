package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fetch windows of a data blob with 16 KiB piece digests (the mkfs default): random reads
 * fetch the pieces they touch, sequential reads grow their windows, and background prefetch
 * fills the rest without holding up a READ.
 */
class FetchWindowsTest {
  private static final int MIB = 1 << 20;
  private static final int PIECE = 16 * 1024;

  @TempDir Path tmp;
  final ExecutorService loop = Executors.newSingleThreadExecutor();
  final FakeBlobSource source = new FakeBlobSource();
  FakeDevice device;
  Daemon daemon;
  byte[] data;
  String dataDigest;
  String metaDigest;

  @AfterEach
  void stop() throws Exception {
    daemon.close();
    loop.shutdownNow();
    assertThat(loop.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
  }

  /** A daemon with a 16 MiB data blob whose piece digests a verified "meta blob" names. */
  private FakeDevice.FakeAnonFd start(boolean prefetch) throws Exception {
    data = DaemonTest.random(16 * MIB, 21);
    dataDigest = source.add(data);
    byte[] meta = DaemonTest.random(10_000, 22);
    metaDigest = source.add(meta);
    PieceIndex index = PieceVerificationTest.indexOf(data, PIECE);
    BlobIndexReader reader = blob -> Arrays.equals(Files.readAllBytes(blob), meta)
        ? Map.of(dataDigest, index) : Map.of();
    if (prefetch) {
      // A known (empty) prefetch list: the blob is not recorded first, so it is fetched whole at once.
      Files.writeString(Files.createDirectories(tmp.resolve("state/prefetch")).resolve(dataDigest), "# nothing\n");
    }
    device = new FakeDevice(tmp);
    daemon = new Daemon(device, new Domains(source, Map.of()), DaemonConfig.defaults().withFetchSize(MIB)
        .withThreads(4).withWholeBlobMax(MIB).withStateDir(tmp.resolve("state")).withPrefetch(prefetch ? DaemonConfig.Prefetch.ALL : DaemonConfig.Prefetch.NONE), reader);
    loop.submit(() -> {
      daemon.run();
      return null;
    });
    device.open(1, 1, "d", metaDigest);
    device.awaitCopen(1);
    device.read(2, 1, 0, 4096); // the meta blob, whole: now the daemon knows the pieces
    device.awaitCompletions(1);
    source.fetched.clear();
    FakeDevice.FakeAnonFd fd = device.open(3, 2, "d", dataDigest);
    device.awaitCopen(3);
    return fd;
  }

  @Test
  void randomReads_fetchAtMostFourTimesTheBytesAsked() throws Exception {
    FakeDevice.FakeAnonFd fd = start(false);
    Random r = new Random(23);
    int reads = 200;
    for (int i = 0; i < reads; i++) {
      long off = (long) r.nextInt(data.length / 4096) * 4096;
      device.read(10 + i, 2, off, 4096);
      device.awaitCompletions(2 + i);
      assertThat(fd.bytes(off, 4096)).isEqualTo(Arrays.copyOfRange(data, (int) off, (int) off + 4096));
    }
    assertThat(daemon.stats().readFailures()).isZero();
    assertThat(source.bytesFetched()).as("bytes fetched for %d random 4 KiB reads", reads)
        .isLessThanOrEqualTo(4L * 4096 * reads);
  }

  @Test
  void sequentialReads_windowsGrow_toTheLargest_inFewFetches() throws Exception {
    FakeDevice.FakeAnonFd fd = start(false);
    int read = 128 * 1024;
    int n = 0;
    for (long off = 0; off < data.length; off += read) {
      if (fd.cached(off, off + read)) {
        continue; // a front end serves cached ranges itself: no READ
      }
      device.read(10 + n, 2, off, read);
      n++;
      device.awaitCompletions(1 + n);
    }
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
    assertThat(daemon.stats().readFailures()).isZero();
    // 16 MiB in 128 KiB READs: windows start at the READ (8 pieces) and double to 1 MiB, two
    // ahead of the reader; a READ that caught up fetches its own pieces apart from the windows
    // ahead (it waits for its own only). 1 MiB windows alone would be 16 fetches, the 128 READs
    // each on its own 128.
    assertThat(source.fetched.stream().mapToLong(f -> f[1]).max().orElse(0)).isEqualTo(MIB);
    assertThat(source.fetched.size()).isLessThanOrEqualTo(32);
    assertThat(n).as("READs that reached the daemon").isLessThan(data.length / read);
  }

  @Test
  void prefetch_fillsTheWholeBlob_withoutAnyRead() throws Exception {
    FakeDevice.FakeAnonFd fd = start(true);
    for (int i = 0; i < 1000 && !fd.cached(0, data.length); i++) {
      Thread.sleep(10);
    }
    assertThat(fd.cached(0, data.length)).as("prefetched whole").isTrue();
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
    assertThat(source.bytesFetched()).isEqualTo(data.length);
    assertThat(source.transfers.get()).as("streamed in one transfer").isEqualTo(1);
  }

  @Test
  void prefetch_ofABlobWhoseStartIsCached_streamsFromItsFirstHole() throws Exception {
    // What a daemon that died part way through the stream left: the first 5 MiB, written.
    byte[] expected = DaemonTest.random(16 * MIB, 21); // the blob start() makes
    Files.write(tmp.resolve("obj-2-3"), Arrays.copyOf(expected, 5 * MIB));
    FakeDevice.FakeAnonFd fd = start(true);
    for (int i = 0; i < 1000 && !fd.cached(0, data.length); i++) {
      Thread.sleep(10);
    }
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
    assertThat(source.fetched).allSatisfy(f -> assertThat(f[0]).isGreaterThanOrEqualTo(5L * MIB));
    assertThat(source.bytesFetched()).isEqualTo(11L * MIB);
  }

  @Test
  void prefetch_startsNothingWhileAReadsFetchRuns_andTheReadGetsItsOwnPiece() throws Exception {
    source.delayMillis = 100; // 16 steps of 1 MiB, 2 at a time: the prefetch takes about a second
    FakeDevice.FakeAnonFd fd = start(true);
    CountDownLatch gate = new CountDownLatch(1);
    source.gateOffset = 12L * MIB;
    source.gate = gate;
    device.read(20, 2, 12L * MIB + 4096, 4096); // far ahead of the prefetch
    for (int i = 0; i < 1000 && !source.started.contains(12L * MIB); i++) {
      Thread.sleep(5);
    }
    assertThat(source.started).as("the READ's fetch started at once").contains(12L * MIB);
    try {
      Thread.sleep(300); // prefetch fetches issued before the READ came reach the source and end
      int startedSoFar = source.started.size();
      Thread.sleep(500); // the READ's fetch is held: a prefetch that did not wait would start more
      assertThat(source.started).as("fetches started while a READ's fetch ran").hasSize(startedSoFar);
    } finally {
      gate.countDown();
    }
    device.awaitCompletions(2);
    assertThat(fd.bytes(12L * MIB + 4096, 4096))
        .isEqualTo(Arrays.copyOfRange(data, 12 * MIB + 4096, 12 * MIB + 8192));
    assertThat(source.fetched).anySatisfy(f -> assertThat(f).containsExactly(12L * MIB, PIECE));
    for (int i = 0; i < 2000 && !fd.cached(0, data.length); i++) {
      Thread.sleep(10);
    }
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
    assertThat(daemon.stats().readFailures()).isZero();
  }

  @Test
  void aReadWaitingOnAPrefetchThatBreaksOff_fetchesItself_andGetsItsBytes() throws Exception {
    CountDownLatch stall = new CountDownLatch(1);
    source.transferStall = stall; // the prefetch stream holds the first batch, then breaks
    FakeDevice.FakeAnonFd fd = start(true);
    for (int i = 0; i < 1000 && source.transfers.get() == 0; i++) {
      Thread.sleep(5);
    }
    Thread.sleep(100); // the stream claimed its first batch [0, 1 MiB)
    device.read(30, 2, 65536, 4096); // in that batch: waits on the stream
    Thread.sleep(200);
    assertThat(device.completions).as("waiting on the stream's batch").doesNotContain(30);
    stall.countDown();
    device.awaitCompletions(2);
    assertThat(daemon.stats().readFailures()).as("the READ was not failed by the prefetch").isZero();
    assertThat(fd.bytes(65536, 4096)).isEqualTo(Arrays.copyOfRange(data, 65536, 65536 + 4096));
  }
}
