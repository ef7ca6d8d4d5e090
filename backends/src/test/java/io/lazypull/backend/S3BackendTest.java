package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.lazypull.backend.BackendException.Kind;
import java.nio.ByteBuffer;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * {@code s3://} against S3Proxy in this JVM with SigV4 authentication on. The big blob goes up
 * as a multipart upload (256 MiB > the 64 MiB threshold, 16 MiB parts).
 */
class S3BackendTest extends BlobBackendContract {
  static io.lazypull.backend.loopback.S3ProxyServer s3;
  static BlobBackend backend;

  @BeforeAll
  static void start() throws Exception {
    s3 = S3ProxyServer.start();
    s3.createBucket("layers");
    backend = Backends.open(s3.uri("layers/lazypull/blobs"), S3ProxyServer.options().build());
    assertThat(backend.put(big().path())).isEqualTo(big().hex());
    assertThat(backend.stats().bytesWritten()).isEqualTo(TestBlobs.BIG_SIZE);
  }

  @AfterAll
  static void stop() throws Exception {
    if (backend != null) {
      backend.close();
    }
    if (s3 != null) {
      s3.close();
    }
  }

  @Override
  BlobBackend backend() {
    return backend;
  }

  @Override
  BlobBackend openAnother() throws java.io.IOException {
    return Backends.open(s3.uri("layers/lazypull/blobs"), S3ProxyServer.options().build());
  }

  @Test
  void describe_showsBucketPrefixAndEndpoint() {
    assertThat(backend.describe()).isEqualTo("s3://layers/lazypull/blobs/?endpoint=http://127.0.0.1:"
        + s3.port() + "&region=us-east-1&path-style=true");
  }

  @Test
  void wrongSecret_failsPermanently_namingBackendAndStatus_neverTheSecret() throws Exception {
    String secret = "wrong-secret-DO-NOT-PRINT-42";
    ListAppender<ILoggingEvent> logs = new ListAppender<>();
    Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    Level before = root.getLevel();
    logs.start();
    root.addAppender(logs);
    root.setLevel(Level.DEBUG);
    try (BlobBackend wrong = Backends.open(s3.uri("layers/lazypull/blobs"), BackendOptions.builder()
        .credentials(new Credentials(S3ProxyServer.IDENTITY, secret)).build())) {
      assertThatThrownBy(() -> wrong.size(big().hex())).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.status()).isEqualTo(403);
            assertThat(e.getMessage()).contains(wrong.describe()).contains("HTTP 403")
                .contains("size sha256:" + big().hex()).doesNotContain(secret);
            assertThat(stackText(e)).doesNotContain(secret);
          });
      assertThatThrownBy(() -> wrong.read(big().hex(), 0, ByteBuffer.allocate(10)))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.status()).isEqualTo(403);
            assertThat(e.getMessage()).contains("SignatureDoesNotMatch").doesNotContain(secret);
          });
      assertThat(wrong.stats().retries()).isZero(); // permanent: not retried
    } finally {
      root.detachAppender(logs);
      root.setLevel(before);
    }
    assertThat(logs.list).allSatisfy(ev -> assertThat(ev.getFormattedMessage()).doesNotContain(secret));
  }

  @Test
  void opening_checksTheUri_andBuildsTheClientOnlyOnConnectOrFirstUse() throws Exception {
    java.net.URI uri = java.net.URI.create(s3.uri("layers/lazypull/blobs"));
    try (S3Store store = new S3Store(uri, S3ProxyServer.options().build())) {
      assertThat(store.connected()).isFalse(); // 'up' opens a backend only to check its URI
      store.connect();
      assertThat(store.connected()).isTrue();
    }
    try (S3Store store = new S3Store(uri, S3ProxyServer.options().build())) {
      assertThat(store.size(big().hex(), new Call())).isEqualTo(TestBlobs.BIG_SIZE); // the first request builds it
      assertThat(store.connected()).isTrue();
      store.close();
      assertThatThrownBy(store::connect).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }
    assertThatThrownBy(() -> new S3Store(java.net.URI.create("s3://b/p?endpoint=ftp://x"), S3ProxyServer.options().build()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("http://"); // still checked when opened
  }

  @Test
  void connect_sendsOneWarmUpRequest_withoutWaitingForItsAnswer() throws Exception {
    // An endpoint that takes the request and never answers: connect() must not wait for it.
    try (java.net.ServerSocket silent = new java.net.ServerSocket(0, 5, java.net.InetAddress.getLoopbackAddress())) {
      silent.setSoTimeout(20_000);
      java.net.URI uri = java.net.URI.create("s3://bucket/blobs?endpoint=http://127.0.0.1:" + silent.getLocalPort()
          + "&region=us-east-1&path-style=true");
      try (S3Store store = new S3Store(uri, S3ProxyServer.options().build())) {
        long t0 = System.nanoTime();
        store.connect();
        assertThat(System.nanoTime() - t0).as("connect() took (ns)").isLessThan(10_000_000_000L);
        try (java.net.Socket c = silent.accept()) {
          String line = new java.io.BufferedReader(new java.io.InputStreamReader(c.getInputStream(),
              java.nio.charset.StandardCharsets.US_ASCII)).readLine();
          assertThat(line).isEqualTo("HEAD /bucket/blobs/" + S3Store.WARM_UP_HEX + " HTTP/1.1");
        }
      }
    }
  }

  @Test
  void credentials_fromTheEnvironment_areUsed() throws Exception {
    BackendOptions env = BackendOptions.builder().environment(Map.of(
        "AWS_ACCESS_KEY_ID", S3ProxyServer.IDENTITY,
        "AWS_SECRET_ACCESS_KEY", S3ProxyServer.CREDENTIAL)).build();
    try (BlobBackend b = Backends.open(s3.uri("layers/lazypull/blobs"), env)) {
      assertThat(b.size(big().hex())).isEqualTo(TestBlobs.BIG_SIZE);
    }
  }

  @Test
  void missingBucket_isPermanent() throws Exception {
    try (BlobBackend b = Backends.open(s3.uri("no-such-bucket"), S3ProxyServer.options().build())) {
      assertThatThrownBy(() -> b.read(big().hex(), 0, ByteBuffer.allocate(10)))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("NoSuchBucket");
          });
    }
  }

  @Test
  void put_smallThreshold_usesMultipartWithSmallParts() throws Exception {
    TestBlobs.Blob blob = TestBlobs.create(tmp, "mp.bin", (11L << 20) + 123, 99);
    try (BlobBackend b = Backends.open(s3.uri("layers/mp"), S3ProxyServer.options()
        .multipart(6L << 20, 5 << 20).build())) {
      assertThat(b.put(blob.path())).isEqualTo(blob.hex());
      assertThat(b.size(blob.hex())).isEqualTo(blob.size());
      assertThat(b.download(blob.hex(), tmp.resolve("mp.out"))).isEqualTo(blob.size());
    }
  }

  @Test
  void objectKey_isPrefixPlusHex() throws Exception {
    // The same bucket seen without the prefix: the object is at "lazypull/blobs/<hex>".
    try (BlobBackend b = Backends.open(s3.uri("layers/lazypull"), S3ProxyServer.options().build())) {
      assertThatThrownBy(() -> b.size(big().hex())).isInstanceOf(BackendException.class);
    }
    try (BlobBackend b = Backends.open(s3.uri("layers/lazypull/blobs/"), S3ProxyServer.options().build())) {
      assertThat(b.size(big().hex())).isEqualTo(TestBlobs.BIG_SIZE);
    }
  }

  static String stackText(Throwable t) {
    java.io.StringWriter w = new java.io.StringWriter();
    t.printStackTrace(new java.io.PrintWriter(w));
    return w.toString();
  }
}
