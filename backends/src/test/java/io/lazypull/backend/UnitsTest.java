package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Digests, URIs, options, challenges and docker config keys: the small parsers. */
class UnitsTest {
  static final String HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

  @TempDir Path tmp;

  @Test
  void normalize_acceptsHexAndSha256Prefix() {
    assertThat(Digests.normalize(HEX)).isEqualTo(HEX);
    assertThat(Digests.normalize("sha256:" + HEX)).isEqualTo(HEX);
  }

  @Test
  void normalize_rejectsEverythingElse() {
    for (String bad : new String[] {"", HEX.toUpperCase(), HEX.substring(1), HEX + "0",
        "sha512:" + HEX, "sha256:" + HEX.replace('f', 'g'), " " + HEX, "SHA256:" + HEX}) {
      assertThatThrownBy(() -> Digests.normalize(bad)).as(bad)
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a sha256 digest");
    }
    assertThatThrownBy(() -> Digests.normalize(null)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void sha256_ofFileAndBuffer() throws Exception {
    Path f = Files.writeString(tmp.resolve("t"), "test");
    assertThat(Digests.sha256Hex(f)).isEqualTo(HEX);
    ByteBuffer b = ByteBuffer.wrap("xxtest".getBytes()).position(2);
    assertThat(Digests.sha256Hex(b)).isEqualTo(HEX);
    assertThat(b.position()).isEqualTo(2);
  }

  @Test
  void open_unknownScheme_isAUsageError() {
    assertThatThrownBy(() -> Backends.open(URI.create("ftp://x/y"), BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("unsupported backend URI scheme 'ftp'");
  }

  @Test
  void open_s3_rejectsUnknownOptions_andBadEndpoints() {
    assertThatThrownBy(() -> Backends.open("s3://b/p?pathstyle=true", BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("unknown option 'pathstyle'");
    assertThatThrownBy(() -> Backends.open("s3://b?endpoint=ftp://h", BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("http:// or https://");
    assertThatThrownBy(() -> Backends.open("s3://key:secret@b", BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).message().doesNotContain("secret");
  }

  @Test
  void open_s3_describesWithoutCredentials() throws Exception {
    try (BlobBackend b = Backends.open("s3://bucket?endpoint=http://127.0.0.1:9&path-style=1",
        BackendOptions.builder().credentials(new Credentials("AKIA", "SECRET")).build())) {
      assertThat(b.describe()).isEqualTo("s3://bucket/?endpoint=http://127.0.0.1:9&path-style=true");
    }
  }

  @Test
  void open_registry_validatesTheRepository_andHidesUserInfo() throws Exception {
    assertThatThrownBy(() -> Backends.open("oci://r.example/Bad Name", BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Backends.open("oci://r.example/UPPER", BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a repository name");
    try (BlobBackend b = Backends.open("oci://u:p4ss@r.example:5000/a/b-c/d_e",
        BackendOptions.defaults())) {
      assertThat(b.describe()).isEqualTo("oci://r.example:5000/a/b-c/d_e");
    }
    try (BlobBackend b = Backends.open("oci://docker.io/library/alpine", BackendOptions.defaults())) {
      assertThat(b.describe()).isEqualTo("oci://registry-1.docker.io/library/alpine");
    }
  }

  @Test
  void options_checkTheirArguments_andHideTheSecret() {
    assertThatThrownBy(() -> BackendOptions.builder().maxRetries(-1)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> BackendOptions.builder().readTimeout(Duration.ZERO)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> BackendOptions.builder().backoff(Duration.ofSeconds(2), Duration.ofSeconds(1)))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> BackendOptions.builder().maxConcurrentRequests(0)).isInstanceOf(IllegalArgumentException.class);
    BackendOptions o = BackendOptions.builder().credentials(new Credentials("me", "hunter2")).build();
    assertThat(o.toString()).contains("me").doesNotContain("hunter2");
    assertThat(o.toBuilder().maxRetries(1).build().credentials()).isEqualTo(o.credentials());
    assertThat(BackendOptions.defaults().maxRetries()).isEqualTo(4);
  }

  @Test
  void parseChallenge_bearerWithQuotedCommas() {
    Map<String, String> c = RegistryAuth.parseChallenge(
        "Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
            + "scope=\"repository:a/b:pull,push\",error=\"insufficient_scope\"");
    assertThat(c).containsEntry("", "bearer").containsEntry("realm", "https://auth.example/token")
        .containsEntry("service", "registry.example").containsEntry("scope", "repository:a/b:pull,push")
        .containsEntry("error", "insufficient_scope");
    assertThat(RegistryAuth.parseChallenge("Basic realm=\"Registry Realm\""))
        .containsEntry("", "basic").containsEntry("realm", "Registry Realm");
    assertThat(RegistryAuth.parseChallenge(null)).isEmpty();
  }

  @Test
  void dockerConfigKeys_matchHostAndPortInAnySpelling() {
    assertThat(DockerConfig.matches("127.0.0.1:5000", "127.0.0.1:5000")).isTrue();
    assertThat(DockerConfig.matches("http://127.0.0.1:5000", "127.0.0.1:5000")).isTrue();
    assertThat(DockerConfig.matches("https://127.0.0.1:5000/v1/", "127.0.0.1:5000")).isTrue();
    assertThat(DockerConfig.matches("127.0.0.1", "127.0.0.1:5000")).isFalse();
    assertThat(DockerConfig.matches("https://index.docker.io/v1/", "registry-1.docker.io")).isTrue();
    assertThat(DockerConfig.matches("ghcr.io", "registry-1.docker.io")).isFalse();
  }

  @Test
  void backendException_formatsItsMessage() {
    BackendException e = new BackendException(BackendException.Kind.TRANSIENT, "s3://b/", "read [0,10)",
        HEX, 503, "SlowDown: reduce your request rate", null);
    assertThat(e.getMessage()).isEqualTo("s3://b/: read [0,10) sha256:" + HEX
        + ": HTTP 503: SlowDown: reduce your request rate");
    assertThat(e.isTransient()).isTrue();
    assertThat(new BackendException(BackendException.Kind.PERMANENT, "file:///x", "put", null, 0,
        "read-only", null).getMessage()).isEqualTo("file:///x: put: read-only");
  }
}
