package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.daemon.device.Request;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prefetch lists: the daemon records the ranges a blob's first READs asked for, in order, and a
 * later daemon with an empty cache fetches them before anyone reads.
 */
class PrefetchListTest {
  private static final int MIB = 1 << 20;
  private static final int PIECE = 16 * 1024;

  @TempDir Path tmp;
  final ExecutorService loop = Executors.newSingleThreadExecutor();
  final FakeBlobSource source = new FakeBlobSource();
  final byte[] data = DaemonTest.random(16 * MIB, 31);
  final byte[] meta = DaemonTest.random(10_000, 32);
  final String dataDigest = source.add(data);
  final String metaDigest = source.add(meta);
  FakeDevice device;
  Daemon daemon;

  @AfterEach
  void stop() throws Exception {
    if (daemon != null) {
      daemon.close();
    }
    loop.shutdownNow();
    assertThat(loop.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
  }

  Path listFile() {
    return tmp.resolve("state/prefetch").resolve(dataDigest);
  }

  /** The recorded list's ranges, {offset, length}, in order. */
  List<long[]> ranges() throws Exception {
    return Files.readAllLines(listFile()).stream().filter(l -> !l.startsWith("#"))
        .map(l -> Arrays.stream(l.split(" ")).mapToLong(Long::parseLong).toArray()).toList();
  }

  /** A daemon that knows the data blob's pieces, with the data blob opened as object 2. */
  FakeDevice.FakeAnonFd start(DaemonConfig.Prefetch prefetch) throws Exception {
    startDaemon(prefetch, Map.of(dataDigest, PieceVerificationTest.indexOf(data, PIECE)));
    return open(3, 2, dataDigest);
  }

  /** A daemon that knows {@code indexes}, with the meta blob opened as object 1 and read. */
  void startDaemon(DaemonConfig.Prefetch prefetch, Map<String, PieceIndex> indexes) throws Exception {
    BlobIndexReader reader = blob -> Arrays.equals(Files.readAllBytes(blob), meta) ? indexes : Map.of();
    device = new FakeDevice(tmp);
    daemon = new Daemon(device, new Domains(source, Map.of()), DaemonConfig.defaults().withFetchSize(MIB)
        .withThreads(4).withWholeBlobMax(MIB).withStateDir(tmp.resolve("state")).withPrefetch(prefetch), reader);
    loop.submit(() -> {
      daemon.run();
      return null;
    });
    device.open(1, 1, "d", metaDigest);
    device.awaitCopen(1);
    device.read(2, 1, 0, 4096);
    device.awaitCompletions(1);
    source.fetched.clear();
  }

  FakeDevice.FakeAnonFd open(int msgId, int objectId, String digest) throws Exception {
    FakeDevice.FakeAnonFd fd = device.open(msgId, objectId, "d", digest);
    device.awaitCopen(msgId);
    return fd;
  }

  void awaitCached(FakeDevice.FakeAnonFd fd, long start, long end) throws Exception {
    for (int i = 0; i < 1000 && !fd.cached(start, end); i++) {
      Thread.sleep(10);
    }
    assertThat(fd.cached(start, end)).as("[%d, %d) cached", start, end).isTrue();
    assertThat(fd.bytes(start, (int) (end - start))).isEqualTo(Arrays.copyOfRange(data, (int) start, (int) end));
  }

  @Test
  void firstReads_areRecordedInOrder_andWrittenWhenTheObjectCloses() throws Exception {
    start(DaemonConfig.Prefetch.NONE);
    device.read(10, 2, 8L * MIB, 4096);
    device.awaitCompletions(2);
    device.read(11, 2, MIB, 64 * 1024);
    device.awaitCompletions(3);
    device.read(12, 2, MIB + 64 * 1024, 64 * 1024); // continues the last: one range
    device.awaitCompletions(4);
    device.read(13, 2, 12L * MIB, 8192);
    device.awaitCompletions(5);
    assertThat(listFile()).as("written only when the recording ends").doesNotExist();
    device.queue.add(new Request.Close(14, 2));
    for (int i = 0; i < 500 && !Files.exists(listFile()); i++) {
      Thread.sleep(10);
    }
    List<long[]> ranges = ranges();
    // Each READ's fetch window, in order; the second and third READ are one run (merged).
    assertThat(ranges).hasSize(3);
    assertThat(ranges.get(0)).containsExactly(8L * MIB, PIECE);
    assertThat(ranges.get(1)[0]).isEqualTo(MIB);
    assertThat(ranges.get(1)[1]).isGreaterThanOrEqualTo(128 * 1024);
    assertThat(ranges.get(2)).containsExactly(12L * MIB, PIECE);
  }

  @Test
  void aReadThatComesAsTheCopenIsWritten_isRecorded() throws Exception {
    startDaemon(DaemonConfig.Prefetch.NONE, Map.of(dataDigest, PieceVerificationTest.indexOf(data, PIECE)));
    // The kernel may send a READ of an object the moment its copen is written: it is served
    // (on the daemon's loop) before the thread that wrote the copen goes on.
    device.onCopen = () -> {
      device.onCopen = null;
      device.read(10, 2, 3L * MIB, 4096);
      try {
        device.awaitCompletions(2);
      } catch (InterruptedException e) {
        throw new AssertionError(e);
      }
    };
    open(3, 2, dataDigest);
    device.awaitCompletions(2);
    device.queue.add(new Request.Close(11, 2));
    for (int i = 0; i < 500 && !Files.exists(listFile()); i++) {
      Thread.sleep(10);
    }
    assertThat(listFile()).as("the list of the blob's one READ").exists();
    assertThat(ranges()).singleElement().satisfies(r -> assertThat(r).containsExactly(3L * MIB, PIECE));
  }

  @Test
  void aRecordedList_isFetchedBeforeAnyRead_andNothingElse() throws Exception {
    Files.createDirectories(listFile().getParent());
    Files.writeString(listFile(), "# two ranges\n" + 12L * MIB + " 65536\n" + (2L * MIB + 100) + " 4000\n");
    FakeDevice.FakeAnonFd fd = start(DaemonConfig.Prefetch.LIST);
    awaitCached(fd, 12L * MIB, 12L * MIB + 65536);
    awaitCached(fd, 2L * MIB, 2L * MIB + PIECE);
    Thread.sleep(300);
    assertThat(source.bytesFetched()).as("the listed pieces only").isEqualTo(65536 + PIECE);
    assertThat(fd.cached(0, 4096)).isFalse();
    assertThat(Files.readString(listFile())).as("a blob with a list is not recorded again").startsWith("# two ranges");
  }

  @Test
  void aListThatDoesNotParse_isIgnored_andReadsAreServed() throws Exception {
    Files.createDirectories(listFile().getParent());
    Files.writeString(listFile(), "12 x\n");
    FakeDevice.FakeAnonFd fd = start(DaemonConfig.Prefetch.LIST);
    Thread.sleep(300);
    assertThat(source.fetched).as("nothing prefetched").isEmpty();
    device.read(10, 2, 3L * MIB, 4096);
    device.awaitCompletions(2);
    assertThat(fd.bytes(3L * MIB, 4096)).isEqualTo(Arrays.copyOfRange(data, 3 * MIB, 3 * MIB + 4096));
    assertThat(daemon.stats().readFailures()).isZero();
  }

  @Test
  void all_fetchesTheWholeBlob_onlyOnceItsFirstReadsAreRecorded() throws Exception {
    FakeDevice.FakeAnonFd fd = start(DaemonConfig.Prefetch.ALL);
    device.read(10, 2, 5L * MIB, 4096);
    device.awaitCompletions(2);
    Thread.sleep(500); // well inside the recording (it ends 2 s after the last READ)
    assertThat(fd.cached(0, data.length)).as("not prefetched while recording").isFalse();
    for (int i = 0; i < 1000 && !fd.cached(0, data.length); i++) {
      Thread.sleep(10);
    }
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
    assertThat(ranges()).hasSize(1);
    assertThat(ranges().get(0)).containsExactly(5L * MIB, PIECE);
  }

  @Test
  void aListQueuedWhileAnotherBlobIsFetchedWhole_goesFirst_andTheWholeFetchGoesOnAfter() throws Exception {
    byte[] other = DaemonTest.random(16 * MIB, 33);
    String otherDigest = source.add(other);
    Files.createDirectories(listFile().getParent());
    // The other blob has a known (empty) list: it is fetched whole at once, not recorded first.
    Files.writeString(listFile().resolveSibling(otherDigest), "# nothing\n");
    Files.writeString(listFile(), 12L * MIB + " 65536\n");
    source.delayMillis = 100; // per fetch: the other blob's whole fetch takes well over a second
    startDaemon(DaemonConfig.Prefetch.ALL, Map.of(dataDigest, PieceVerificationTest.indexOf(data, PIECE),
        otherDigest, PieceVerificationTest.indexOf(other, PIECE)));
    FakeDevice.FakeAnonFd otherFd = open(3, 2, otherDigest);
    for (int i = 0; i < 1000 && source.bytesFetched() == 0; i++) {
      Thread.sleep(5);
    }
    assertThat(source.bytesFetched()).as("the other blob's whole fetch began").isPositive();
    FakeDevice.FakeAnonFd fd = open(4, 3, dataDigest);
    awaitCached(fd, 12L * MIB, 12L * MIB + 65536);
    assertThat(otherFd.cached(0, other.length)).as("the list did not wait for the other blob's whole fetch")
        .isFalse();
    for (int i = 0; i < 3000 && !(otherFd.cached(0, other.length) && fd.cached(0, data.length)); i++) {
      Thread.sleep(10);
    }
    assertThat(otherFd.bytes(0, other.length)).as("the other blob, fetched whole after the list").isEqualTo(other);
    assertThat(fd.bytes(0, data.length)).isEqualTo(data);
  }
}
