package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docker-registry in token mode ({@code auth.token}) with the test's own token endpoint: the
 * bearer flow from the WWW-Authenticate challenge, tokens per scope, refresh before
 * {@code expires_in} (by the injected clock) and after a 401 (a token the registry finds
 * expired), and clear failures.
 */
class RegistryTokenAuthTest {
  static final String USER = "lazypull";
  static final String PASSWORD = "token-Password-DO-NOT-PRINT";
  static final String REPO = "lazypull/tok";

  @TempDir static Path dir;
  @TempDir Path tmp;
  static TokenServer tokens;
  static io.lazypull.backend.loopback.RegistryServer registry;
  static TestBlobs.Blob blob;

  @BeforeAll
  static void start() throws Exception {
    RegistryServer.assumeInstalled();
    tokens = TokenServer.start(dir, USER, PASSWORD);
    registry = RegistryServer.token(dir, tokens);
    blob = TestBlobs.create(dir, "blob.bin", 2_000_003, 21);
    try (BlobBackend b = open(options())) {
      assertThat(b.put(blob.path())).isEqualTo(blob.hex());
    }
    assertThat(tokens.scopes).contains("repository:" + REPO + ":pull,push");
  }

  @AfterAll
  static void stop() throws Exception {
    if (registry != null) {
      registry.close();
    }
    if (tokens != null) {
      tokens.close();
    }
  }

  @BeforeEach
  void resetTokens() {
    tokens.nextLifetime = Duration.ofHours(1);
    tokens.expiresIn = 300;
    tokens.issued.set(0);
  }

  static BackendOptions.Builder options() {
    return BackendOptions.builder().credentials(new Credentials(USER, PASSWORD))
        .environment(Map.of("HOME", "/nonexistent"));
  }

  static BlobBackend open(BackendOptions.Builder options) throws Exception {
    return Backends.open(registry.uri(REPO), options.build());
  }

  static void assertReads(BlobBackend b, long offset) throws Exception {
    ByteBuffer dst = ByteBuffer.allocate(65_536);
    assertThat(b.read(blob.hex(), offset, dst)).isEqualTo(65_536);
    assertThat(dst.array()).isEqualTo(blob.bytes(offset, 65_536));
  }

  @Test
  void bearerFlow_oneTokenServesManyRequests() throws Exception {
    try (BlobBackend b = open(options())) {
      assertThat(b.size(blob.digest())).isEqualTo(blob.size());
      for (int i = 0; i < 5; i++) {
        assertReads(b, i * 100_000L);
      }
      assertThat(tokens.issued.get()).isEqualTo(1);
      assertThat(tokens.scopes).contains("repository:" + REPO + ":pull");
      assertThat(tokens.authorizationSeen).last().asString().startsWith("Basic ");
      assertThat(b.stats().retries()).isZero();
    }
  }

  @Test
  void tokenNearItsExpiresIn_isReplacedBeforeTheNextRequest() throws Exception {
    MutableClock clock = new MutableClock(Instant.parse("2030-01-01T00:00:00Z"));
    tokens.expiresIn = 60;
    try (BlobBackend b = open(options().clock(clock))) {
      assertReads(b, 0);
      clock.advance(Duration.ofSeconds(30));
      assertReads(b, 10);
      assertThat(tokens.issued.get()).isEqualTo(1);
      clock.advance(Duration.ofSeconds(20)); // 50 s of 60: inside the refresh margin
      assertReads(b, 20);
      assertThat(tokens.issued.get()).isEqualTo(2);
    }
  }

  @Test
  void tokenTheRegistryFindsExpired_isRefreshedTransparently() throws Exception {
    // exp 58 s ago: the registry's 60 s leeway accepts it for at most 2 more seconds, while
    // expires_in (300) tells the client it is good for 5 minutes.
    tokens.nextLifetime = Duration.ofSeconds(-58);
    try (BlobBackend b = open(options())) {
      assertReads(b, 0);
      String stale = tokens.lastToken;
      tokens.nextLifetime = Duration.ofHours(1);
      awaitRejected(stale);
      assertReads(b, 1_000_000); // sends the stale token, gets 401, fetches a new one, repeats
      assertThat(tokens.issued.get()).isEqualTo(2);
      assertThat(b.stats().errors()).isZero();
      assertThat(b.stats().retries()).isZero();
    }
  }

  /** Waits (bounded) until the registry rejects a token, asking it directly. */
  private static void awaitRejected(String token) throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    HttpRequest req = HttpRequest.newBuilder(URI.create("http://" + registry.hostPort() + "/v2/"
        + REPO + "/blobs/sha256:" + blob.hex())).method("HEAD", HttpRequest.BodyPublishers.noBody())
        .header("Authorization", "Bearer " + token).build();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (System.nanoTime() < deadline) {
      if (http.send(req, HttpResponse.BodyHandlers.discarding()).statusCode() == 401) {
        return;
      }
      Thread.sleep(100);
    }
    throw new AssertionError("the registry kept accepting the expired token for 10 s");
  }

  @Test
  void wrongPassword_atTheTokenEndpoint_isPermanent_andNamesIt() throws Exception {
    String wrong = "not-" + PASSWORD;
    try (BlobBackend b = open(options().credentials(new Credentials(USER, wrong)))) {
      assertThatThrownBy(() -> b.size(blob.hex())).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.status()).isEqualTo(401);
            assertThat(e.getMessage()).startsWith(registry.uri(REPO) + ": size sha256:")
                .contains("token endpoint " + tokens.realm())
                .contains("refused to issue a token as user '" + USER + "'")
                .doesNotContain(wrong).doesNotContain(PASSWORD);
            assertThat(S3BackendTest.stackText(e)).doesNotContain(PASSWORD);
          });
      assertThat(b.stats().retries()).isZero();
    }
  }

  @Test
  void anonymous_isRefusedByThisTokenEndpoint() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri(REPO), BackendOptions.builder()
        .environment(Map.of("HOME", "/nonexistent")).build())) {
      assertThatThrownBy(() -> b.size(blob.hex())).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("refused to issue a token anonymously");
          });
    }
  }

  @Test
  void push_getsAPushScopedToken_andChunksWork() throws Exception {
    TestBlobs.Blob other = TestBlobs.create(tmp, "pushed.bin", 300_000, 22);
    try (BlobBackend b = open(options().multipart(100_000, 100_000))) {
      assertThat(b.put(other.path())).isEqualTo(other.hex());
      assertThat(b.size(other.hex())).isEqualTo(300_000);
      assertThat(tokens.scopes).contains("repository:" + REPO + ":pull,push");
    }
  }
}
