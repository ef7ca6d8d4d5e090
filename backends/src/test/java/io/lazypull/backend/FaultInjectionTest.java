package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import io.lazypull.backend.loopback.FaultProxy;
import io.lazypull.backend.loopback.FaultProxy.Fault;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Real servers (S3Proxy, docker-registry) behind a {@link FaultProxy} that answers 500/503,
 * resets, closes, stalls, truncates or corrupts: transient faults are retried with backoff and
 * the read then succeeds with the right bytes; corruption is caught by verification and never
 * handed out. Each case opens a fresh backend, so its first request takes a fresh connection.
 */
class FaultInjectionTest {
  static final Duration READ_TIMEOUT = Duration.ofMillis(600);

  @TempDir static Path dir;
  @TempDir Path tmp;
  static io.lazypull.backend.loopback.S3ProxyServer s3;
  static io.lazypull.backend.loopback.RegistryServer registry;
  static FaultProxy s3Proxy;
  static FaultProxy registryProxy;
  static TestBlobs.Blob blob;
  final List<Duration> sleeps = new CopyOnWriteArrayList<>();

  @BeforeAll
  static void start() throws Exception {
    blob = TestBlobs.create(dir, "blob.bin", 3_000_000, 41);
    s3 = S3ProxyServer.start();
    s3.createBucket("faults");
    try (BlobBackend b = Backends.open(s3.uri("faults"), S3ProxyServer.options().build())) {
      b.put(blob.path());
    }
    s3Proxy = new FaultProxy(s3.port());
    registry = RegistryServer.open(dir.resolve("registry"));
    try (BlobBackend b = Backends.open(registry.uri("faults/blobs"), BackendOptions.defaults())) {
      b.put(blob.path());
    }
    registryProxy = new FaultProxy(registry.port());
  }

  @AfterAll
  static void stop() throws Exception {
    for (AutoCloseable c : new AutoCloseable[] {s3Proxy, registryProxy, s3, registry}) {
      if (c != null) {
        c.close();
      }
    }
  }

  FaultProxy proxy(String kind) {
    return kind.equals("s3") ? s3Proxy : registryProxy;
  }

  BlobBackend open(String kind) throws IOException {
    return open(kind, 3);
  }

  BlobBackend open(String kind, int retries) throws IOException {
    BackendOptions.Builder o = (kind.equals("s3") ? S3ProxyServer.options() : BackendOptions.builder())
        .readTimeout(READ_TIMEOUT).connectTimeout(Duration.ofSeconds(2))
        .maxRetries(retries).backoff(Duration.ofMillis(10), Duration.ofMillis(80)).jitter(false)
        .sleeper(sleeps::add);
    String uri = kind.equals("s3") ? s3.uri("faults", s3Proxy.port())
        : "oci+http://127.0.0.1:" + registryProxy.port() + "/faults/blobs";
    return Backends.open(uri, o.build());
  }

  void assertReadSucceedsAfter(String kind, Fault... faults) throws IOException {
    assertReadSucceedsAfter(kind, 1, faults);
  }

  void assertReadSucceedsAfter(String kind, int minRetries, Fault... faults) throws IOException {
    proxy(kind).script(faults);
    try (BlobBackend b = open(kind)) {
      ByteBuffer dst = ByteBuffer.allocate(256 << 10);
      assertThat(b.read(blob.hex(), 1_000_000, dst)).isEqualTo(256 << 10);
      assertThat(dst.array()).isEqualTo(blob.bytes(1_000_000, 256 << 10));
      assertThat(proxy(kind).faults()).isEqualTo(faults.length);
      assertThat(b.stats().retries()).isBetween((long) minRetries, (long) faults.length);
      assertThat(b.stats().errors()).isZero();
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void status503_twice_isRetriedThenSucceeds(String kind) throws IOException {
    assertReadSucceedsAfter(kind, Fault.STATUS_503, Fault.STATUS_503);
    assertThat(sleeps).hasSizeBetween(1, 2);
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void status500_isRetriedThenSucceeds(String kind) throws IOException {
    assertReadSucceedsAfter(kind, Fault.STATUS_500);
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void connectionReset_isRetriedThenSucceeds(String kind) throws IOException {
    assertReadSucceedsAfter(kind, Fault.RESET, Fault.RESET);
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void connectionClosedBeforeAnswer_isRetriedThenSucceeds(String kind) throws IOException {
    // java.net.http itself repeats an idempotent request whose connection closed before any
    // byte of an answer, so for the registry the retry may not be ours.
    assertReadSucceedsAfter(kind, kind.equals("s3") ? 1 : 0, Fault.REFUSE);
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void truncatedBody_isAShortRead_retriedThenSucceeds(String kind) throws IOException {
    assertReadSucceedsAfter(kind, Fault.TRUNCATE);
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void stallBeforeTheAnswer_timesOut_thenRetried(String kind) throws IOException {
    long t0 = System.nanoTime();
    assertReadSucceedsAfter(kind, Fault.STALL);
    assertThat(Duration.ofNanos(System.nanoTime() - t0)).isBetween(READ_TIMEOUT.minusMillis(100),
        Duration.ofSeconds(10));
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void stallInTheMiddleOfTheBody_isAborted_thenRetried(String kind) throws IOException {
    proxy(kind).script(Fault.STALL_BODY);
    try (BlobBackend b = open(kind)) {
      ByteBuffer dst = ByteBuffer.allocate(256 << 10);
      assertThat(b.read(blob.hex(), 5, dst)).isEqualTo(256 << 10);
      assertThat(dst.array()).isEqualTo(blob.bytes(5, 256 << 10));
      assertThat(b.stats().retries()).isEqualTo(1);
      if (kind.equals("registry")) {
        // java.net.http has no read timeout: only the watchdog can have ended this one.
        assertThat(b.stats().timeouts()).isEqualTo(1);
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void truncatedRangeTransfer_resumesWhereItStopped(String kind) throws IOException {
    proxy(kind).script(Fault.TRUNCATE);
    try (BlobBackend b = open(kind)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      b.transferRange(blob.hex(), 1_000_000, 300_000, Channels.newChannel(out));
      assertThat(out.toByteArray()).isEqualTo(blob.bytes(1_000_000, 300_000));
      assertThat(b.stats().retries()).isEqualTo(1);
      assertThat(b.stats().bytesRead()).isEqualTo(300_000);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void truncatedWholeBlobTransfer_resumesWhereItStopped(String kind) throws IOException {
    proxy(kind).script(Fault.TRUNCATE);
    try (BlobBackend b = open(kind)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      assertThat(b.transferTo(blob.hex(), Channels.newChannel(out))).isEqualTo(blob.size());
      assertThat(out.toByteArray()).isEqualTo(blob.bytes(0, (int) blob.size()));
      assertThat(b.stats().retries()).isEqualTo(1);
      assertThat(b.stats().bytesRead()).isEqualTo(blob.size());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void corruptedBytes_withAChunkDigest_failPermanently_andAreNeverHandedOut(String kind)
      throws IOException {
    proxy(kind).always(Fault.CORRUPT);
    try (BlobBackend b = open(kind)) {
      String chunk = Digests.sha256Hex(ByteBuffer.wrap(blob.bytes(4096, 8192)));
      ByteBuffer dst = ByteBuffer.allocate(8192);
      assertThatThrownBy(() -> b.read(blob.hex(), 4096, dst, chunk))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("sha256 mismatch for sha256:" + blob.hex()
                + " [4096,12288)");
          });
      assertThat(dst.position()).isZero();
      assertThat(dst.array()).containsOnly(0);
      assertThat(b.stats().retries()).isZero();
      assertThat(b.stats().errors()).isEqualTo(1);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void corruptedWholeBlob_failsVerification_andDownloadLeavesNoFile(String kind)
      throws IOException {
    proxy(kind).always(Fault.CORRUPT);
    try (BlobBackend b = open(kind)) {
      Path out = tmp.resolve("blob.out");
      assertThatThrownBy(() -> b.download(blob.digest(), out))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("sha256 mismatch for sha256:" + blob.hex()
                + " [0," + blob.size() + ")");
          });
      assertThat(out).doesNotExist();
      try (var files = java.nio.file.Files.list(tmp)) {
        assertThat(files).isEmpty();
      }
    } finally {
      proxy(kind).script();
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"s3", "registry"})
  void persistent503_givesUpAfterTheRetries_withExponentialBackoff(String kind) throws IOException {
    proxy(kind).always(Fault.STATUS_503);
    try (BlobBackend b = open(kind, 3)) {
      assertThatThrownBy(() -> b.read(blob.hex(), 0, ByteBuffer.allocate(100)))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.TRANSIENT);
            assertThat(e.status()).isEqualTo(503);
            assertThat(e.getMessage()).contains(b.describe()).contains("HTTP 503")
                .contains("gave up after 3 retries");
          });
      assertThat(sleeps).containsExactly(Duration.ofMillis(10), Duration.ofMillis(20),
          Duration.ofMillis(40));
      assertThat(b.stats().requests()).isEqualTo(4);
      assertThat(proxy(kind).connections()).isEqualTo(4);
    } finally {
      proxy(kind).script();
    }
  }
}
