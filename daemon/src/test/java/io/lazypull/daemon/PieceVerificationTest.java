package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Data blobs are verified piece by piece with digests learned from a verified meta blob. */
class PieceVerificationTest {
  private static final int MIB = 1 << 20;
  private static final int PIECE = 64 * 1024;

  @TempDir Path tmp;
  final ExecutorService loop = Executors.newSingleThreadExecutor();
  Daemon daemon;

  @AfterEach
  void stop() throws Exception {
    daemon.close();
    loop.shutdownNow();
    assertThat(loop.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
  }

  static PieceIndex indexOf(byte[] data) throws Exception {
    return indexOf(data, PIECE);
  }

  static PieceIndex indexOf(byte[] data, int piece) throws Exception {
    final int PIECE = piece;
    int n = (data.length + PIECE - 1) / PIECE;
    byte[] digests = new byte[n * 32];
    for (int i = 0; i < n; i++) {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      sha.update(data, i * PIECE, Math.min(PIECE, data.length - i * PIECE));
      System.arraycopy(sha.digest(), 0, digests, i * 32, 32);
    }
    return new PieceIndex(data.length, PIECE, digests);
  }

  private FakeDevice start(FakeBlobSource source, BlobIndexReader reader, Path state) throws Exception {
    return start(source, reader, state, 128 * 1024);
  }

  private FakeDevice start(FakeBlobSource source, BlobIndexReader reader, Path state, int fetchSize)
      throws Exception {
    FakeDevice device = new FakeDevice(tmp);
    daemon = new Daemon(device, new Domains(source, Map.of()),
        DaemonConfig.defaults().withFetchSize(fetchSize).withThreads(2).withWholeBlobMax(MIB).withStateDir(state),
        reader);
    loop.submit(() -> {
      daemon.run();
      return null;
    });
    return device;
  }

  @Test
  void dataBlob_verifiedPerPiece_corruptionDetected_andDigestsSurviveARestart() throws Exception {
    FakeBlobSource source = new FakeBlobSource();
    byte[] data = DaemonTest.random(3 * MIB + 12345, 11);
    String dataDigest = source.add(data);
    byte[] meta = DaemonTest.random(10_000, 12);
    String metaDigest = source.add(meta);
    PieceIndex index = indexOf(data);
    Path state = tmp.resolve("state");
    // The "meta blob" names the data blob's piece digests once it has been verified.
    BlobIndexReader reader = blob -> Arrays.equals(Files.readAllBytes(blob), meta)
        ? Map.of(dataDigest, index) : Map.of();
    FakeDevice device = start(source, reader, state);

    device.open(1, 1, "d", metaDigest);
    device.open(2, 2, "d", dataDigest);
    device.awaitCopen(1);
    device.awaitCopen(2);
    device.read(3, 1, 0, 4096);
    device.awaitCompletions(1);

    device.read(4, 2, MIB, 4096);
    device.awaitCompletions(2);
    FakeDevice.FakeAnonFd dataFd = device.fds.get(2);
    // A random read fetches the piece it touches (not the largest window).
    assertThat(dataFd.bytes(MIB, PIECE)).isEqualTo(Arrays.copyOfRange(data, MIB, MIB + PIECE));
    assertThat(dataFd.cached(MIB + PIECE, MIB + PIECE + 4096)).isFalse();

    source.corrupting = true;
    device.read(5, 2, 2 * MIB, 4096);
    device.awaitCompletions(3);
    assertThat(dataFd.cached(2 * MIB, 2 * MIB + 4096)).isFalse();
    assertThat(daemon.stats().integrityFailures()).isEqualTo(1);

    // A new daemon that never sees the meta blob still knows the digests (state dir).
    daemon.close();
    FakeDevice device2 = start(source, BlobIndexReader.NONE, state);
    device2.open(1, 9, "d", dataDigest);
    device2.awaitCopen(1);
    device2.read(2, 9, 3 * MIB, 4096);
    device2.awaitCompletions(1);
    assertThat(daemon.stats().integrityFailures()).isEqualTo(1);
    assertThat(device2.fds.get(9).cached(3 * MIB, 3 * MIB + 4096)).isFalse();
  }

  @Test
  void remoteWindowOfSeveralSteps_oneRequest_eachStepVerifiedAndWrittenAsItArrives() throws Exception {
    FakeBlobSource source = new FakeBlobSource();
    source.remote = true;
    byte[] data = DaemonTest.random(3 * MIB + 5000, 21);
    String dataDigest = source.add(data);
    byte[] bad = DaemonTest.random(2 * MIB, 22);
    String badDigest = source.add(bad);
    Map<String, PieceIndex> indexes = Map.of(dataDigest, indexOf(data), badDigest, indexOf(bad));
    byte[] meta = DaemonTest.random(10_000, 23);
    String metaDigest = source.add(meta);
    BlobIndexReader reader = blob -> Arrays.equals(Files.readAllBytes(blob), meta) ? indexes : Map.of();
    FakeDevice device = start(source, reader, tmp.resolve("state"), 4 * MIB);
    device.open(1, 1, "d", metaDigest);
    device.open(2, 2, "d", dataDigest);
    device.open(3, 3, "d", badDigest);
    device.awaitCopen(3);
    device.read(10, 1, 0, 4096);
    device.awaitCompletions(1);

    // One READ of the whole blob: one request, passed through a 1 MiB buffer (3 steps and a tail).
    device.read(11, 2, 0, data.length);
    device.awaitCompletions(2);
    assertThat(device.fds.get(2).bytes(0, data.length)).isEqualTo(data);
    assertThat(source.rangeTransfers).singleElement()
        .satisfies(r -> assertThat(r).containsExactly(0L, (long) data.length));
    assertThat(daemon.stats().integrityFailures()).isZero();

    // A bad byte in the second step: the first step is verified and written, the second is not.
    source.corruptOffset = MIB + 77;
    device.read(12, 3, 0, bad.length);
    device.awaitCompletions(3);
    FakeDevice.FakeAnonFd badFd = device.fds.get(3);
    assertThat(source.rangeTransfers).hasSize(2);
    assertThat(badFd.bytes(0, MIB)).isEqualTo(Arrays.copyOfRange(bad, 0, MIB));
    assertThat(badFd.cached(MIB, MIB + 4096)).isFalse();
    assertThat(daemon.stats().integrityFailures()).isEqualTo(1);
  }

  @Test
  void aReadInAWindowStillArriving_isServedOnceItsStepIsWritten_notAtTheWindowsEnd() throws Exception {
    FakeBlobSource source = new FakeBlobSource();
    source.remote = true;
    byte[] data = DaemonTest.random(4 * MIB, 24);
    String dataDigest = source.add(data);
    byte[] meta = DaemonTest.random(10_000, 25);
    String metaDigest = source.add(meta);
    Map<String, PieceIndex> indexes = Map.of(dataDigest, indexOf(data));
    BlobIndexReader reader = blob -> Arrays.equals(Files.readAllBytes(blob), meta) ? indexes : Map.of();
    FakeDevice device = start(source, reader, tmp.resolve("state"), 4 * MIB);
    device.open(1, 1, "d", metaDigest);
    device.open(2, 2, "d", dataDigest);
    device.awaitCopen(2);
    device.read(10, 1, 0, 4096);
    device.awaitCompletions(1);

    // A 4 MiB window from one request that stalls at its start, and again after 2 MiB and a bit.
    java.util.concurrent.CountDownLatch start = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.CountDownLatch stall = new java.util.concurrent.CountDownLatch(1);
    source.rangeStallsAfter = new long[] {100, 2 * MIB + 100};
    source.rangeStalls = new java.util.concurrent.CountDownLatch[] {start, stall};
    device.read(11, 2, 0, 4 * MIB);
    for (int i = 0; i < 1000 && source.rangeTransfers.isEmpty(); i++) {
      Thread.sleep(10);
    }
    // A READ of the second MiB, sent while the window is in flight and its MiB not yet there, is
    // served once that MiB is written; the window's own READ waits for the rest.
    device.read(12, 2, MIB + 8192, 4096);
    Thread.sleep(50); // let it find the window in flight
    start.countDown();
    device.awaitCompletions(2);
    assertThat(device.completions).containsExactly(10, 12);
    assertThat(device.fds.get(2).bytes(MIB + 8192, 4096)).isEqualTo(Arrays.copyOfRange(data, MIB + 8192, MIB + 12288));

    stall.countDown();
    device.awaitCompletions(3);
    assertThat(device.completions).containsExactly(10, 12, 11);
    assertThat(device.fds.get(2).bytes(0, 4 * MIB)).isEqualTo(data);
    assertThat(source.rangeTransfers).singleElement();
    assertThat(daemon.stats().integrityFailures()).isZero();
  }

  @Test
  void bigBlobWithoutDigests_writtenUnverified() throws Exception {
    FakeBlobSource source = new FakeBlobSource();
    byte[] data = DaemonTest.random(2 * MIB, 13);
    String digest = source.add(data);
    FakeDevice device = start(source, BlobIndexReader.NONE, tmp.resolve("s"));
    device.open(1, 1, "d", digest);
    device.awaitCopen(1);
    device.read(2, 1, MIB, 4096);
    device.awaitCompletions(1);
    assertThat(device.fds.get(1).bytes(MIB, 4096)).isEqualTo(Arrays.copyOfRange(data, MIB, MIB + 4096));
    assertThat(daemon.stats().readFailures()).isZero();
  }
}
