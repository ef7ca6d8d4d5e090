package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docker-registry with htpasswd (bcrypt) authentication: Basic credentials from every source
 * lazypull reads, and clear failures without them or with wrong ones.
 */
class RegistryHtpasswdTest {
  static final String USER = "lazypull";
  static final String PASSWORD = "s3cret-Password-DO-NOT-PRINT";
  static final String REPO = "private/layers";

  @TempDir static Path dir;
  @TempDir Path tmp;
  static io.lazypull.backend.loopback.RegistryServer registry;
  static TestBlobs.Blob blob;

  @BeforeAll
  static void start() throws Exception {
    registry = RegistryServer.htpasswd(dir, USER, PASSWORD);
    blob = TestBlobs.create(dir, "blob.bin", 1_234_567, 11);
    try (BlobBackend b = open(BackendOptions.builder().credentials(new Credentials(USER, PASSWORD)))) {
      assertThat(b.put(blob.path())).isEqualTo(blob.hex());
    }
  }

  @AfterAll
  static void stop() throws Exception {
    if (registry != null) {
      registry.close();
    }
  }

  static BlobBackend open(BackendOptions.Builder options) throws Exception {
    return Backends.open(registry.uri(REPO), options.environment(Map.of("HOME", "/nonexistent")).build());
  }

  static void assertReads(BlobBackend b) throws Exception {
    assertThat(b.size(blob.hex())).isEqualTo(blob.size());
    ByteBuffer dst = ByteBuffer.allocate(100_000);
    assertThat(b.read(blob.hex(), 1_000_000, dst)).isEqualTo(100_000);
    assertThat(dst.array()).isEqualTo(blob.bytes(1_000_000, 100_000));
  }

  @Test
  void credentials_fromOptions() throws Exception {
    try (BlobBackend b = open(BackendOptions.builder().credentials(new Credentials(USER, PASSWORD)))) {
      assertReads(b);
    }
  }

  @Test
  void credentials_fromDockerConfigInDOCKER_CONFIG() throws Exception {
    Path cfg = Files.createDirectories(tmp.resolve("docker"));
    String auth = Base64.getEncoder().encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8));
    Files.writeString(cfg.resolve("config.json"), "{\"auths\":{\"http://" + registry.hostPort()
        + "\":{\"auth\":\"" + auth + "\"},\"other.example:5000\":{\"auth\":\"eDp5\"}}}");
    try (BlobBackend b = Backends.open(registry.uri(REPO), BackendOptions.builder()
        .environment(Map.of("DOCKER_CONFIG", cfg.toString())).build())) {
      assertReads(b);
    }
  }

  @Test
  void credentials_fromHomeDockerConfig() throws Exception {
    Path home = tmp.resolve("home");
    Files.createDirectories(home.resolve(".docker"));
    String auth = Base64.getEncoder().encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8));
    Files.writeString(home.resolve(".docker/config.json"),
        "{\"auths\":{\"" + registry.hostPort() + "\":{\"auth\":\"" + auth + "\"}}}");
    try (BlobBackend b = Backends.open(registry.uri(REPO), BackendOptions.builder()
        .environment(Map.of("HOME", home.toString())).build())) {
      assertReads(b);
    }
  }

  @Test
  void credentials_fromACredentialHelper() throws Exception {
    Path bin = Files.createDirectories(tmp.resolve("bin"));
    Path helper = bin.resolve("docker-credential-lazytest");
    Files.writeString(helper, "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\n"
        + "[ \"$server\" = \"" + registry.hostPort() + "\" ] || exit 1\n"
        + "echo '{\"ServerURL\":\"'$server'\",\"Username\":\"" + USER + "\",\"Secret\":\"" + PASSWORD + "\"}'\n");
    Files.setPosixFilePermissions(helper, PosixFilePermissions.fromString("rwx------"));
    Path cfg = Files.createDirectories(tmp.resolve("docker"));
    Files.writeString(cfg.resolve("config.json"),
        "{\"credHelpers\":{\"" + registry.hostPort() + "\":\"lazytest\"}}");
    try (BlobBackend b = Backends.open(registry.uri(REPO), BackendOptions.builder()
        .environment(Map.of("DOCKER_CONFIG", cfg.toString(), "PATH", bin + ":/usr/bin:/bin")).build())) {
      assertReads(b);
    }
  }

  @Test
  void credentials_fromTheEnvironment() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri(REPO), BackendOptions.builder().environment(Map.of(
        "LAZYPULL_REGISTRY_USERNAME", USER, "LAZYPULL_REGISTRY_PASSWORD", PASSWORD)).build())) {
      assertReads(b);
    }
  }

  @Test
  void credentials_fromTheUri_areNotShownByDescribe() throws Exception {
    String uri = "oci+http://" + USER + ":" + PASSWORD + "@" + registry.hostPort() + "/" + REPO;
    try (BlobBackend b = Backends.open(uri, BackendOptions.builder()
        .environment(Map.of("HOME", "/nonexistent")).build())) {
      assertReads(b);
      assertThat(b.describe()).isEqualTo(registry.uri(REPO)).doesNotContain(PASSWORD);
    }
  }

  @Test
  void wrongPassword_failsPermanently_namingBackendStatusAndUser_neverThePassword() throws Exception {
    String wrong = "wrong-" + PASSWORD;
    try (BlobBackend b = open(BackendOptions.builder().credentials(new Credentials(USER, wrong)))) {
      assertThatThrownBy(() -> b.read(blob.hex(), 0, ByteBuffer.allocate(10)))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.status()).isEqualTo(401);
            assertThat(e.getMessage()).startsWith(registry.uri(REPO) + ": read sha256:" + blob.hex())
                .contains("HTTP 401").contains("credentials rejected as user '" + USER + "'")
                .doesNotContain(wrong).doesNotContain(PASSWORD);
            assertThat(S3BackendTest.stackText(e)).doesNotContain(PASSWORD);
          });
      assertThat(b.stats().retries()).isZero();
    }
  }

  @Test
  void noCredentials_failsPermanently_sayingWhereToPutThem() throws Exception {
    try (BlobBackend b = open(BackendOptions.builder())) {
      assertThatThrownBy(() -> b.size(blob.hex())).isInstanceOfSatisfying(BackendException.class,
          e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.status()).isEqualTo(401);
            assertThat(e.getMessage()).contains("no credentials").contains("docker login");
          });
    }
  }

  @Test
  void push_withCredentials_andRead() throws Exception {
    TestBlobs.Blob other = TestBlobs.create(tmp, "other.bin", 70_000, 12);
    try (BlobBackend b = open(BackendOptions.builder().credentials(new Credentials(USER, PASSWORD))
        .multipart(32 << 10, 32 << 10))) {
      assertThat(b.put(other.path())).isEqualTo(other.hex());
      assertThat(b.size(other.hex())).isEqualTo(70_000);
    }
  }
}
