package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import io.lazypull.backend.FakeStore.Action;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The shared fetch layer over a {@link FakeStore}: retries, backoff, bounds, verification. */
class ManagedBackendTest {
  @TempDir Path tmp;
  FakeStore store;
  final List<Duration> sleeps = new CopyOnWriteArrayList<>();
  byte[] bytes;
  String hex;

  @BeforeEach
  void setUp() {
    store = new FakeStore();
    bytes = new byte[100_000];
    new SplittableRandom(3).nextBytes(bytes);
    hex = store.add(bytes);
  }

  ManagedBackend backend(BackendOptions.Builder options) {
    return new ManagedBackend(store, options.sleeper(sleeps::add).build());
  }

  ManagedBackend backend() {
    return backend(BackendOptions.builder().jitter(false));
  }

  @Test
  void transientFailures_areRetried_withExponentialBackoff() throws Exception {
    store.then(Action.FAIL_TRANSIENT, Action.IO_EXCEPTION, Action.FAIL_TRANSIENT);
    try (ManagedBackend b = backend()) {
      assertThat(b.size(hex)).isEqualTo(100_000);
      assertThat(sleeps).containsExactly(Duration.ofMillis(100), Duration.ofMillis(200),
          Duration.ofMillis(400));
      assertThat(b.stats()).isEqualTo(new BackendStats(4, 3, 0, 0, 0, 0));
    }
  }

  @Test
  void backoff_isCappedAtTheMaximum_andFullJitterStaysWithinTheBound() throws Exception {
    try (ManagedBackend b = backend(BackendOptions.builder().jitter(false)
        .backoff(Duration.ofMillis(100), Duration.ofMillis(1000)))) {
      assertThat(b.backoff(0)).isEqualTo(Duration.ofMillis(100));
      assertThat(b.backoff(3)).isEqualTo(Duration.ofMillis(800));
      assertThat(b.backoff(4)).isEqualTo(Duration.ofMillis(1000));
      assertThat(b.backoff(80)).isEqualTo(Duration.ofMillis(1000));
    }
    try (ManagedBackend b = backend(BackendOptions.builder()
        .backoff(Duration.ofMillis(100), Duration.ofMillis(1000)))) {
      for (int i = 0; i < 200; i++) {
        assertThat(b.backoff(2)).isBetween(Duration.ZERO, Duration.ofMillis(400));
      }
    }
  }

  @Test
  void permanentAndNotFound_areNotRetried() throws Exception {
    store.then(Action.FAIL_PERMANENT);
    try (ManagedBackend b = backend()) {
      assertThatThrownBy(() -> b.size(hex)).isInstanceOfSatisfying(BackendException.class,
          e -> assertThat(e.kind()).isEqualTo(Kind.PERMANENT));
      store.then(Action.FAIL_NOT_FOUND);
      assertThatThrownBy(() -> b.read(hex, 0, ByteBuffer.allocate(1)))
          .isInstanceOfSatisfying(BackendException.class,
              e -> assertThat(e.kind()).isEqualTo(Kind.NOT_FOUND));
      assertThat(sleeps).isEmpty();
      assertThat(b.stats().requests()).isEqualTo(2);
      assertThat(b.stats().errors()).isEqualTo(1); // NOT_FOUND is an answer, not an error
    }
  }

  @Test
  void retries_areBounded_andTheLastFailureSaysSo() throws Exception {
    store.then(Action.FAIL_TRANSIENT, Action.FAIL_TRANSIENT, Action.FAIL_TRANSIENT);
    try (ManagedBackend b = backend(BackendOptions.builder().maxRetries(2))) {
      assertThatThrownBy(() -> b.size(hex)).isInstanceOfSatisfying(BackendException.class, e -> {
        assertThat(e.kind()).isEqualTo(Kind.TRANSIENT);
        assertThat(e.status()).isEqualTo(503);
        assertThat(e.getMessage()).isEqualTo("fake://store: size sha256:" + hex
            + ": HTTP 503: injected (gave up after 2 retries)");
      });
      assertThat(b.stats().requests()).isEqualTo(3);
      assertThat(b.stats().errors()).isEqualTo(1);
    }
  }

  @Test
  void aReadThatFailsHalfWay_resumesAfterTheBytesItGot() throws Exception {
    store.then(Action.HALF_THEN_FAIL);
    try (ManagedBackend b = backend()) {
      ByteBuffer dst = ByteBuffer.allocate(50_000);
      assertThat(b.read(hex, 10_000, dst)).isEqualTo(50_000);
      assertThat(dst.array()).isEqualTo(java.util.Arrays.copyOfRange(bytes, 10_000, 60_000));
      assertThat(b.stats().retries()).isEqualTo(1);
      assertThat(b.stats().bytesRead()).isEqualTo(50_000);
    }
  }

  @Test
  void aTransferThatFailsHalfWay_resumes_andIsVerified() throws Exception {
    store.then(Action.HALF_THEN_FAIL);
    try (ManagedBackend b = backend()) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      assertThat(b.transferTo("sha256:" + hex, Channels.newChannel(out))).isEqualTo(100_000);
      assertThat(out.toByteArray()).isEqualTo(bytes);
      assertThat(b.stats().retries()).isEqualTo(1);
    }
  }

  @Test
  void aRangeTransferThatFailsHalfWay_resumesAfterTheBytesItGot() throws Exception {
    store.then(Action.HALF_THEN_FAIL);
    try (ManagedBackend b = backend()) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      b.transferRange("sha256:" + hex, 10_000, 50_000, Channels.newChannel(out));
      assertThat(out.toByteArray()).isEqualTo(java.util.Arrays.copyOfRange(bytes, 10_000, 60_000));
      assertThat(b.stats().retries()).isEqualTo(1);
      assertThat(b.stats().bytesRead()).isEqualTo(50_000);
    }
  }

  @Test
  void aFailingTargetChannel_isNotRetried_andItsErrorComesThrough() throws Exception {
    try (ManagedBackend b = backend()) {
      java.nio.channels.WritableByteChannel broken = new java.nio.channels.WritableByteChannel() {
        @Override
        public int write(ByteBuffer src) throws java.io.IOException {
          throw new java.io.IOException("Broken pipe");
        }

        @Override
        public boolean isOpen() {
          return true;
        }

        @Override
        public void close() {}
      };
      assertThatThrownBy(() -> b.transferTo(hex, broken)).isExactlyInstanceOf(java.io.IOException.class)
          .hasMessage("Broken pipe");
      assertThatThrownBy(() -> b.transferRange(hex, 10, 100, broken)).isExactlyInstanceOf(java.io.IOException.class)
          .hasMessage("Broken pipe");
      assertThat(b.stats().retries()).isZero();
      assertThat(sleeps).isEmpty();
    }
  }

  @Test
  void corruptWholeBlob_isDetected_andDownloadWritesNothing() throws Exception {
    store.corrupt = true;
    try (ManagedBackend b = backend()) {
      Path out = tmp.resolve("out");
      assertThatThrownBy(() -> b.download(hex, out)).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("sha256 mismatch for sha256:" + hex + " [0,100000)");
          });
      assertThat(out).doesNotExist();
      try (var s = Files.list(tmp)) {
        assertThat(s).isEmpty();
      }
      assertThat(b.stats().errors()).isEqualTo(1);
    }
  }

  @Test
  void corruptRange_withAnExpectedDigest_isZeroedAndThrown() throws Exception {
    store.corrupt = true;
    try (ManagedBackend b = backend()) {
      String expected = Digests.sha256Hex(ByteBuffer.wrap(bytes, 0, 4096));
      ByteBuffer dst = ByteBuffer.allocate(4096);
      assertThatThrownBy(() -> b.read(hex, 0, dst, expected))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).isEqualTo("fake://store: read [0,4096) sha256:" + hex
                + ": sha256 mismatch for sha256:" + hex + " [0,4096): expected " + expected
                + ", got " + Digests.sha256Hex(ByteBuffer.wrap(corrupted(0, 4096))));
          });
      assertThat(dst.position()).isZero();
      assertThat(dst.array()).containsOnly(0);
    }
  }

  private byte[] corrupted(int from, int len) {
    byte[] c = java.util.Arrays.copyOfRange(bytes, from, from + len);
    c[0] ^= 1;
    return c;
  }

  @Test
  void aStalledAttempt_isAbortedByTheWatchdog_andRetried() throws Exception {
    store.then(Action.HANG);
    try (ManagedBackend b = backend(BackendOptions.builder().readTimeout(Duration.ofMillis(200)))) {
      long t0 = System.nanoTime();
      ByteBuffer dst = ByteBuffer.allocate(10);
      assertThat(b.read(hex, 0, dst)).isEqualTo(10);
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isBetween(Duration.ofMillis(150),
          Duration.ofSeconds(5));
      assertThat(b.stats().timeouts()).isEqualTo(1);
      assertThat(b.stats().retries()).isEqualTo(1);
    }
  }

  @Test
  void operationTimeout_abortsAStalledAttempt_andStartsNoRetryPastIt() throws Exception {
    store.then(Action.HANG, Action.HANG, Action.HANG);
    try (ManagedBackend b = backend(BackendOptions.builder().jitter(false).readTimeout(Duration.ofSeconds(20))
        .operationTimeout(Duration.ofMillis(300)))) {
      long t0 = System.nanoTime();
      assertThatThrownBy(() -> b.read(hex, 0, ByteBuffer.allocate(10)))
          .isInstanceOfSatisfying(BackendException.class, e -> assertThat(e.kind()).isEqualTo(Kind.TRANSIENT))
          .hasMessageContaining("no answer within the operation timeout (300 ms)");
      // A hang guard, not a speed check: without the operation timeout this takes 3 x 20 s.
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(15));
      assertThat(store.attempts.get()).isEqualTo(1);
      assertThat(b.stats().timeouts()).isEqualTo(1);
    }
  }

  @Test
  void operationTimeout_aBackoffThatWouldEndPastIt_givesUpInstead() throws Exception {
    store.then(Action.FAIL_TRANSIENT, Action.FAIL_TRANSIENT);
    try (ManagedBackend b = backend(BackendOptions.builder().jitter(false)
        .backoff(Duration.ofSeconds(2), Duration.ofSeconds(5)).operationTimeout(Duration.ofSeconds(1)))) {
      assertThatThrownBy(() -> b.size(hex)).hasMessageContaining("gave up after 0 retries: operation timeout 1000 ms");
      assertThat(sleeps).isEmpty();
      assertThat(store.attempts.get()).isEqualTo(1);
    }
  }

  @Test
  void operationTimeout_boundsTheWaitForARequestSlot() throws Exception {
    store.gate = new CountDownLatch(1);
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try (ManagedBackend b = backend(BackendOptions.builder().maxConcurrentRequests(1)
        .readTimeout(Duration.ofSeconds(20)).operationTimeout(Duration.ofMillis(300)))) {
      Future<Integer> first = pool.submit(() -> b.read(hex, 0, ByteBuffer.allocate(10)));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (store.running.get() < 1 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertThatThrownBy(() -> b.size(hex)).hasMessageContaining("request slots stayed busy");
      store.gate.countDown();
      assertThat(first.get(10, TimeUnit.SECONDS)).isEqualTo(10); // the slot's holder was only slow
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void concurrentRequests_areBoundedPerBackend() throws Exception {
    store.gate = new CountDownLatch(1);
    ExecutorService pool = Executors.newFixedThreadPool(12);
    try (ManagedBackend b = backend(BackendOptions.builder().maxConcurrentRequests(3))) {
      List<Future<Integer>> reads = new ArrayList<>();
      for (int i = 0; i < 12; i++) {
        int off = i * 1000;
        reads.add(pool.submit(() -> b.read(hex, off, ByteBuffer.allocate(100))));
      }
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (store.running.get() < 3 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      Thread.sleep(50); // give any over-admitted request time to show up
      assertThat(store.running.get()).isEqualTo(3);
      store.gate.countDown();
      for (Future<Integer> f : reads) {
        assertThat(f.get(10, TimeUnit.SECONDS)).isEqualTo(100);
      }
      assertThat(store.maxRunning.get()).isEqualTo(3);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void sizes_areCached_andPastTheEndReadsAnswerWithoutARequest() throws Exception {
    try (ManagedBackend b = backend()) {
      assertThat(b.size(hex)).isEqualTo(100_000);
      assertThat(b.size(hex)).isEqualTo(100_000);
      assertThat(b.read(hex, 100_000, ByteBuffer.allocate(1))).isEqualTo(-1);
      assertThat(store.attempts.get()).isEqualTo(1);
    }
  }

  @Test
  void put_skipsABlobThatIsThere_andUploadsOneThatIsNot() throws Exception {
    Path f = tmp.resolve("f");
    Files.write(f, new byte[] {1, 2, 3});
    try (ManagedBackend b = backend()) {
      String h = b.put(f);
      assertThat(store.blobs).containsKey(h);
      assertThat(b.stats().bytesWritten()).isEqualTo(3);
      assertThat(b.put(f)).isEqualTo(h);
      assertThat(b.stats().bytesWritten()).isEqualTo(3);
      assertThat(b.stats().errors()).isZero();
    }
  }

  @Test
  void put_transientFailure_isRetried() throws Exception {
    Path f = tmp.resolve("f");
    Files.write(f, new byte[] {4, 5});
    try (ManagedBackend b = backend()) {
      store.then(Action.FAIL_NOT_FOUND, Action.FAIL_TRANSIENT);
      String h = b.put(f);
      assertThat(store.blobs).containsKey(h);
      assertThat(b.stats().retries()).isEqualTo(1);
    }
  }

  @Test
  void interrupt_duringBackoff_stopsRetrying() throws Exception {
    store.then(Action.FAIL_TRANSIENT, Action.FAIL_TRANSIENT);
    try (ManagedBackend b = new ManagedBackend(store, BackendOptions.builder()
        .sleeper(d -> {
          throw new InterruptedException();
        }).build())) {
      assertThatThrownBy(() -> b.size(hex)).isInstanceOf(java.io.InterruptedIOException.class);
      assertThat(Thread.interrupted()).isTrue();
      assertThat(store.attempts.get()).isEqualTo(1);
    }
  }

  @Test
  void zeroLengthReads_askNothing() throws Exception {
    try (ManagedBackend b = backend()) {
      assertThat(b.read(hex, 5, ByteBuffer.allocate(0))).isZero();
      assertThat(b.read(FakeStore.class.getName().isEmpty() ? "" : BlobBackendContract.MISSING, 0,
          ByteBuffer.allocate(0))).isZero();
      assertThat(store.attempts.get()).isZero();
    }
  }
}
