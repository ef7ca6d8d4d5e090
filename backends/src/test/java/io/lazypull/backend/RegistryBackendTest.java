package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code oci+http://} against Debian's docker-registry (Distribution) without authentication.
 * The big blob goes up in PATCH chunks (256 MiB > the 64 MiB threshold); small ones in one PUT.
 */
class RegistryBackendTest extends BlobBackendContract {
  @TempDir static Path dir;
  static io.lazypull.backend.loopback.RegistryServer registry;
  static BlobBackend backend;

  @BeforeAll
  static void start() throws Exception {
    registry = RegistryServer.open(dir);
    backend = Backends.open(registry.uri("lazypull/layers"), BackendOptions.defaults());
    assertThat(backend.put(big().path())).isEqualTo(big().hex());
  }

  @AfterAll
  static void stop() throws Exception {
    if (backend != null) {
      backend.close();
    }
    if (registry != null) {
      registry.close();
    }
  }

  @Override
  BlobBackend backend() {
    return backend;
  }

  @Override
  BlobBackend openAnother() throws java.io.IOException {
    return Backends.open(registry.uri("lazypull/layers"), BackendOptions.defaults());
  }

  @Test
  void describe_isTheRepositoryUri() {
    assertThat(backend.describe()).isEqualTo("oci+http://" + registry.hostPort() + "/lazypull/layers");
  }

  @Test
  void put_chunked_withSmallThreshold() throws Exception {
    TestBlobs.Blob blob = TestBlobs.create(tmp, "chunked.bin", (3L << 20) + 17, 5);
    try (BlobBackend b = Backends.open(registry.uri("lazypull/chunked"), BackendOptions.builder()
        .multipart(1 << 20, 1 << 20).build())) {
      assertThat(b.put(blob.path())).isEqualTo(blob.hex());
      assertThat(b.size(blob.hex())).isEqualTo(blob.size());
      ByteBuffer dst = ByteBuffer.allocate(1 << 20);
      assertThat(b.read(blob.hex(), 2L << 20, dst)).isEqualTo(1 << 20);
      assertThat(dst.array()).isEqualTo(blob.bytes(2L << 20, 1 << 20));
    }
  }

  @Test
  void blobOfAnotherRepository_isNotFoundHere() throws Exception {
    try (BlobBackend other = Backends.open(registry.uri("someone/else"), BackendOptions.defaults())) {
      assertThatThrownBy(() -> other.size(big().hex())).isInstanceOfSatisfying(
          BackendException.class, e -> assertThat(e.kind()).isEqualTo(Kind.NOT_FOUND));
    }
  }

  @Test
  void nothingListening_isTransient_andRetried() throws Exception {
    int port;
    try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    java.util.List<java.time.Duration> sleeps = new java.util.concurrent.CopyOnWriteArrayList<>();
    try (BlobBackend b = Backends.open("oci+http://127.0.0.1:" + port + "/x", BackendOptions.builder()
        .maxRetries(2).sleeper(sleeps::add).build())) {
      assertThatThrownBy(() -> b.size(big().hex())).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.TRANSIENT);
            assertThat(e.getMessage()).contains("ConnectException").contains("gave up after 2 retries");
          });
      assertThat(sleeps).hasSize(2);
      assertThat(b.stats().requests()).isEqualTo(3);
    }
  }
}
