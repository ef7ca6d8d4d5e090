package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What every backend kind must do, run against a real server per subclass. The subclass makes
 * the shared 256 MiB blob ({@link TestBlobs#big()}) available in {@link #backend()} before the
 * tests run.
 */
abstract class BlobBackendContract {
  static final String MISSING = "0000000000000000000000000000000000000000000000000000000000000000";

  /** The backend under test, holding the big blob. */
  abstract BlobBackend backend();

  /** A new backend on the same place, with nothing cached. */
  abstract BlobBackend openAnother() throws IOException;

  @TempDir Path tmp;

  static TestBlobs.Blob big() {
    return TestBlobs.big();
  }

  @Test
  void size_bigBlob_is256MiB() throws IOException {
    assertThat(backend().size(big().digest())).isEqualTo(TestBlobs.BIG_SIZE);
    assertThat(backend().size(big().hex())).isEqualTo(TestBlobs.BIG_SIZE);
  }

  @Test
  void read_atStart_returnsTheFirstBytes() throws IOException {
    assertRange(0, 4096);
    assertRange(0, 1 << 20);
  }

  @Test
  void read_inTheMiddle_returnsThoseBytes() throws IOException {
    assertRange(TestBlobs.BIG_SIZE / 2 - 12_345, 128 << 10);
    assertRange(TestBlobs.BIG_SIZE / 2 + 1, 1 << 20);
  }

  @Test
  void read_atTheEnd_isShortOnlyThere() throws IOException {
    long size = TestBlobs.BIG_SIZE;
    assertRange(size - 4096, 4096);
    ByteBuffer dst = ByteBuffer.allocate(1 << 20);
    int n = backend().read(big().hex(), size - 100_000, dst);
    assertThat(n).isEqualTo(100_000);
    assertThat(dst.position()).isEqualTo(100_000);
    assertThat(slice(dst, 0, n)).isEqualTo(big().bytes(size - 100_000, 100_000));
    ByteBuffer last = ByteBuffer.allocate(10);
    assertThat(backend().read(big().hex(), size - 1, last)).isEqualTo(1);
    assertThat(last.get(0)).isEqualTo(big().bytes(size - 1, 1)[0]);
  }

  @Test
  void read_zeroLength_returnsZero() throws IOException {
    ByteBuffer empty = ByteBuffer.allocate(0);
    assertThat(backend().read(big().hex(), 0, empty)).isZero();
    assertThat(backend().read(big().hex(), TestBlobs.BIG_SIZE + 5, empty)).isZero();
    ByteBuffer full = ByteBuffer.allocate(8);
    full.position(8);
    assertThat(backend().read(big().hex(), 100, full)).isZero();
  }

  @Test
  void read_pastTheEnd_returnsMinusOne() throws IOException {
    ByteBuffer dst = ByteBuffer.allocate(4096);
    assertThat(backend().read(big().hex(), TestBlobs.BIG_SIZE, dst)).isEqualTo(-1);
    assertThat(backend().read(big().hex(), TestBlobs.BIG_SIZE + 1_000_000, dst)).isEqualTo(-1);
    assertThat(dst.position()).isZero();
  }

  @Test
  void read_pastTheEnd_onAFreshBackend_asksTheStore() throws IOException {
    try (BlobBackend fresh = openAnother()) {
      ByteBuffer dst = ByteBuffer.allocate(4096);
      assertThat(fresh.read(big().hex(), TestBlobs.BIG_SIZE, dst)).isEqualTo(-1);
      assertThat(fresh.read(big().hex(), TestBlobs.BIG_SIZE + 1_000_000, dst)).isEqualTo(-1);
      assertThat(fresh.stats().requests()).isEqualTo(2);
      assertThat(fresh.read(big().hex(), TestBlobs.BIG_SIZE - 10, dst)).isEqualTo(10);
      assertNotFound(() -> fresh.read(MISSING, 0, ByteBuffer.allocate(1)));
    }
  }

  @Test
  void read_intoDirectBufferAtAnOffset_fillsFromItsPosition() throws IOException {
    ByteBuffer dst = ByteBuffer.allocateDirect(200_000);
    dst.position(1000).limit(1000 + 150_000);
    int n = backend().read(big().hex(), 7_777_777, dst);
    assertThat(n).isEqualTo(150_000);
    assertThat(dst.position()).isEqualTo(151_000);
    assertThat(slice(dst, 1000, n)).isEqualTo(big().bytes(7_777_777, 150_000));
  }

  @Test
  void read_from16Threads_everyRangeIsRight() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(16);
    try {
      List<Future<Integer>> results = new ArrayList<>();
      for (int t = 0; t < 16; t++) {
        long seed = 1000 + t;
        results.add(pool.submit((Callable<Integer>) () -> {
          SplittableRandom rnd = new SplittableRandom(seed);
          int checked = 0;
          for (int i = 0; i < 12; i++) {
            int len = 1 + rnd.nextInt(1 << 20);
            long off = rnd.nextLong(TestBlobs.BIG_SIZE - len);
            ByteBuffer dst = ByteBuffer.allocate(len);
            assertThat(backend().read(big().hex(), off, dst)).isEqualTo(len);
            assertThat(dst.array()).isEqualTo(big().bytes(off, len));
            checked++;
          }
          return checked;
        }));
      }
      for (Future<Integer> f : results) {
        assertThat(f.get(120, TimeUnit.SECONDS)).isEqualTo(12);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void transferRange_writesExactlyTheRange_inOneRequestWhereRemote() throws IOException {
    long off = 5_000_001;
    int len = 3 << 20;
    long before = backend().stats().requests();
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    backend().transferRange(big().hex(), off, len, java.nio.channels.Channels.newChannel(out));
    assertThat(out.toByteArray()).isEqualTo(big().bytes(off, len));
    if (backend().remote()) {
      assertThat(backend().stats().requests() - before).isEqualTo(1);
    }
    java.io.ByteArrayOutputStream tail = new java.io.ByteArrayOutputStream();
    backend().transferRange(big().hex(), TestBlobs.BIG_SIZE - 10, 10, java.nio.channels.Channels.newChannel(tail));
    assertThat(tail.toByteArray()).isEqualTo(big().bytes(TestBlobs.BIG_SIZE - 10, 10));
  }

  @Test
  void transferRange_pastTheEnd_failsPermanentlyAfterWritingWhatThereIs() {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    assertThatThrownBy(() -> backend().transferRange(big().hex(), TestBlobs.BIG_SIZE - 100, 200,
        java.nio.channels.Channels.newChannel(out)))
        .isInstanceOfSatisfying(BackendException.class, e -> {
          assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
          assertThat(e.getMessage()).contains("100 bytes short");
        });
    assertThat(out.toByteArray()).isEqualTo(big().bytes(TestBlobs.BIG_SIZE - 100, 100));
  }

  @Test
  void read_withTheRightChunkDigest_returnsTheBytes() throws IOException {
    long off = 3 << 20;
    int len = 64 << 10;
    String chunk = Digests.sha256Hex(ByteBuffer.wrap(big().bytes(off, len)));
    ByteBuffer dst = ByteBuffer.allocate(len);
    assertThat(backend().read(big().hex(), off, dst, "sha256:" + chunk)).isEqualTo(len);
    assertThat(dst.array()).isEqualTo(big().bytes(off, len));
  }

  @Test
  void read_withAWrongChunkDigest_failsPermanentlyAndHandsOutNothing() throws IOException {
    ByteBuffer dst = ByteBuffer.allocate(4096);
    dst.position(10);
    String wrong = Digests.sha256Hex(ByteBuffer.wrap(new byte[] {1, 2, 3}));
    assertThatThrownBy(() -> backend().read(big().hex(), 0, dst, wrong))
        .isInstanceOfSatisfying(BackendException.class, e -> {
          assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
          assertThat(e.getMessage()).contains("sha256 mismatch for sha256:" + big().hex() + " [0,4086)")
              .contains(backend().describe());
        });
    assertThat(dst.position()).isEqualTo(10);
    assertThat(dst.array()).containsOnly(0);
  }

  @Test
  void missingBlob_isNotFound_forEveryOperation() {
    assertNotFound(() -> backend().size(MISSING));
    assertNotFound(() -> backend().read(MISSING, 0, ByteBuffer.allocate(10)));
    assertNotFound(() -> backend().transferTo(MISSING, java.nio.channels.Channels.newChannel(
        java.io.OutputStream.nullOutputStream())));
    assertThat(tmp.resolve("out")).doesNotExist();
  }

  @Test
  void malformedDigest_isRejectedBeforeAnyRequest() {
    assertThatThrownBy(() -> backend().size("sha512:abc"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a sha256 digest");
    assertThatThrownBy(() -> backend().read(big().hex().toUpperCase(), 0, ByteBuffer.allocate(1)))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> backend().read(big().hex(), -1, ByteBuffer.allocate(1)))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void download_wholeBigBlob_isVerifiedAndComplete() throws IOException {
    Path out = tmp.resolve("big.out");
    assertThat(backend().download(big().digest(), out)).isEqualTo(TestBlobs.BIG_SIZE);
    assertThat(Files.size(out)).isEqualTo(TestBlobs.BIG_SIZE);
    assertThat(Digests.sha256Hex(out)).isEqualTo(big().hex());
    try (var s = Files.list(tmp)) {
      assertThat(s).containsExactly(out); // no temporary file left behind
    }
  }

  @Test
  void put_smallBlob_thenReadItBack_andPutAgainIsANoOp() throws Exception {
    TestBlobs.Blob small = TestBlobs.create(tmp, "small.bin", 300_001, 42);
    assertThat(backend().put(small.path())).isEqualTo(small.hex());
    long written = backend().stats().bytesWritten();
    assertThat(backend().put(small.path())).isEqualTo(small.hex());
    assertThat(backend().stats().bytesWritten()).isEqualTo(written);
    assertThat(backend().size(small.hex())).isEqualTo(300_001);
    ByteBuffer dst = ByteBuffer.allocate(300_001);
    assertThat(backend().read(small.hex(), 0, dst)).isEqualTo(300_001);
    assertThat(dst.array()).isEqualTo(small.bytes(0, 300_001));
    Path back = tmp.resolve("small.back");
    backend().download(small.hex(), back);
    assertThat(Files.mismatch(back, small.path())).isEqualTo(-1);
  }

  @Test
  void put_emptyBlob_hasSizeZeroAndNoBytes() throws Exception {
    Path empty = Files.createFile(tmp.resolve("empty"));
    String hex = backend().put(empty);
    assertThat(hex).isEqualTo("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assertThat(backend().size(hex)).isZero();
    assertThat(backend().read(hex, 0, ByteBuffer.allocate(16))).isEqualTo(-1);
    assertThat(backend().transferTo(hex, java.nio.channels.Channels.newChannel(
        java.io.OutputStream.nullOutputStream()))).isZero();
  }

  @Test
  void describe_namesTheBackendWithoutSecrets() {
    assertThat(backend().describe()).doesNotContain(S3ProxyServer.CREDENTIAL).doesNotContain("@");
  }

  void assertRange(long offset, int length) throws IOException {
    ByteBuffer dst = ByteBuffer.allocate(length);
    assertThat(backend().read(big().digest(), offset, dst)).isEqualTo(length);
    assertThat(dst.array()).isEqualTo(big().bytes(offset, length));
  }

  static byte[] slice(ByteBuffer buf, int from, int length) {
    byte[] out = new byte[length];
    buf.duplicate().position(from).limit(from + length).slice().get(out);
    return out;
  }

  interface Op {
    Object run() throws Exception;
  }

  void assertNotFound(Op op) {
    assertThatThrownBy(op::run).isInstanceOfSatisfying(BackendException.class, e -> {
      assertThat(e.kind()).isEqualTo(Kind.NOT_FOUND);
      assertThat(e.getMessage()).contains(backend().describe()).contains(MISSING);
    });
  }
}
