package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import io.lazypull.backend.loopback.FaultProxy;
import io.lazypull.backend.loopback.FaultProxy.Fault;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Manifests by tag and by digest: through docker-registry's manifests API, and as blobs plus
 * {@code refs/NAME:TAG} objects in S3Proxy and in a directory; tags of an OCI layout's
 * index.json. Bytes that do not match their digest are never returned.
 */
class ManifestTest {
  @TempDir static Path dir;
  static io.lazypull.backend.loopback.RegistryServer registry;
  static io.lazypull.backend.loopback.S3ProxyServer s3;
  static Path config;
  static Path layer;

  @BeforeAll
  static void start() throws Exception {
    registry = RegistryServer.open(Files.createDirectories(dir.resolve("registry")));
    s3 = S3ProxyServer.start();
    s3.createBucket("images");
    config = Files.writeString(dir.resolve("config.json"),
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    layer = Files.writeString(dir.resolve("layer.bin"), "not really a layer");
  }

  @AfterAll
  static void stop() throws Exception {
    if (registry != null) {
      registry.close();
    }
    if (s3 != null) {
      s3.close();
    }
  }

  static String descriptor(String mediaType, Path file) throws Exception {
    return "{\"mediaType\":\"" + mediaType + "\",\"digest\":\"sha256:" + Digests.sha256Hex(file)
        + "\",\"size\":" + Files.size(file) + "}";
  }

  static Manifest image() throws Exception {
    return new Manifest(Manifest.OCI_MANIFEST, ("{\"schemaVersion\":2,\"mediaType\":\""
        + Manifest.OCI_MANIFEST + "\",\"config\":" + descriptor("application/vnd.oci.image.config.v1+json", config)
        + ",\"layers\":[" + descriptor("application/vnd.lazypull.erofs.meta.v1", layer) + "]}")
        .getBytes(StandardCharsets.UTF_8));
  }

  static Manifest index(Manifest image) {
    return new Manifest(Manifest.OCI_INDEX, ("{\"schemaVersion\":2,\"mediaType\":\"" + Manifest.OCI_INDEX
        + "\",\"manifests\":[{\"mediaType\":\"" + image.mediaType() + "\",\"digest\":\"" + image.digest()
        + "\",\"size\":" + image.size() + ",\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}")
        .getBytes(StandardCharsets.UTF_8));
  }

  /** Blobs, the image manifest by digest, the index by tag; then both read back, by tag and digest. */
  static void roundTrip(BlobBackend b, String tag) throws Exception {
    b.put(config);
    b.put(layer);
    Manifest image = image();
    Manifest index = index(image);
    b.putManifest(image.digest(), image);
    b.putManifest(tag, index);

    Manifest byTag = b.manifest(tag);
    assertThat(byTag.mediaType()).isEqualTo(Manifest.OCI_INDEX);
    assertThat(byTag.digest()).isEqualTo(index.digest());
    assertThat(byTag.bytes()).isEqualTo(index.bytes());
    Manifest byDigest = b.manifest(image.digest());
    assertThat(byDigest.mediaType()).isEqualTo(Manifest.OCI_MANIFEST);
    assertThat(byDigest.bytes()).isEqualTo(image.bytes());
    assertThat(b.manifest(index.digest()).mediaType()).isEqualTo(Manifest.OCI_INDEX);

    assertThatThrownBy(() -> b.manifest(tag.replaceAll("[^:]*$", "missing")))
        .isInstanceOfSatisfying(BackendException.class, e -> assertThat(e.isNotFound()).isTrue());
  }

  @Test
  void registry_tagAndDigest_roundTrip_withTheIndexMediaType() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri("lazypull/manifests"), BackendOptions.defaults())) {
      roundTrip(b, "v1");
    }
  }

  @Test
  void registryWithHtpasswd_manifestsNeedAndUseTheCredentials() throws Exception {
    try (io.lazypull.backend.loopback.RegistryServer auth = RegistryServer.htpasswd(
        Files.createDirectories(dir.resolve("auth")), "alice", "wonderland")) {
      String uri = auth.uri("lazypull/private");
      try (BlobBackend b = Backends.open(uri, BackendOptions.builder()
          .credentials(new Credentials("alice", "wonderland")).build())) {
        roundTrip(b, "v1");
      }
      try (BlobBackend anonymous = Backends.open(uri, BackendOptions.builder()
          .environment(java.util.Map.of()).build())) {
        assertThatThrownBy(() -> anonymous.manifest("v1")).isInstanceOfSatisfying(
            BackendException.class, e -> {
              assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
              assertThat(e.getMessage()).contains("manifest v1").contains("401");
            });
      }
    }
  }

  @Test
  void registry_dockerSchema2_keepsItsMediaType() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri("lazypull/docker"), BackendOptions.defaults())) {
      b.put(config);
      b.put(layer);
      Manifest m = new Manifest(Manifest.DOCKER_MANIFEST, ("{\"schemaVersion\":2,\"mediaType\":\""
          + Manifest.DOCKER_MANIFEST + "\",\"config\":" + descriptor("application/vnd.docker.container.image.v1+json", config)
          + ",\"layers\":[" + descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer) + "]}")
          .getBytes(StandardCharsets.UTF_8));
      b.putManifest("d", m);
      assertThat(b.manifest("d").mediaType()).isEqualTo(Manifest.DOCKER_MANIFEST);
      assertThat(b.manifest("d").digest()).isEqualTo(m.digest());
    }
  }

  @Test
  void registry_refusesAManifestWhoseBlobsAreMissing_withItsErrorCode() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri("lazypull/empty"), BackendOptions.defaults())) {
      assertThatThrownBy(() -> b.putManifest("x", image()))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("put manifest x").contains("HTTP 400")
                .contains("MANIFEST_BLOB_UNKNOWN");
          });
    }
  }

  @Test
  void registry_corruptedManifest_isRefused_byTagAndByDigest() throws Exception {
    try (BlobBackend b = Backends.open(registry.uri("lazypull/corrupt"), BackendOptions.defaults())) {
      roundTrip(b, "c");
    }
    // CORRUPT spoils the first response of each connection: one backend (connection) per read.
    try (FaultProxy proxy = new FaultProxy(registry.port())) {
      proxy.always(Fault.CORRUPT);
      String uri = "oci+http://127.0.0.1:" + proxy.port() + "/lazypull/corrupt";
      try (BlobBackend b = Backends.open(uri, BackendOptions.defaults())) {
        assertThatThrownBy(() -> b.manifest("c")).isInstanceOfSatisfying(BackendException.class, e -> {
          assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
          assertThat(e.getMessage()).contains("the registry announced sha256:");
        });
      }
      Manifest image = image();
      try (BlobBackend b = Backends.open(uri, BackendOptions.defaults())) {
        assertThatThrownBy(() -> b.manifest(image.digest())).isInstanceOfSatisfying(
            BackendException.class, e -> assertThat(e.kind()).isEqualTo(Kind.PERMANENT));
      }
    }
  }

  @Test
  void s3_keepsManifestsAsBlobs_andTagsAsRefsObjects() throws Exception {
    try (BlobBackend b = Backends.open(s3.uri("images/lazypull"), S3ProxyServer.options().build())) {
      roundTrip(b, "library/app:1.0");
      Manifest index = index(image());
      try (var store = new S3Store(java.net.URI.create(s3.uri("images/lazypull")),
          S3ProxyServer.options().build())) {
        assertThat(new String(store.getTag("library/app:1.0", new Call()), StandardCharsets.UTF_8))
            .isEqualTo("{\"mediaType\":\"" + Manifest.OCI_INDEX + "\",\"digest\":\"" + index.digest()
                + "\",\"size\":" + index.size() + "}");
      }
      assertThatThrownBy(() -> b.manifest("latest")).isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("NAME:TAG");
    }
  }

  @Test
  void directory_holdsTheSameLayout_andRefusesBytesThatDoNotMatch() throws Exception {
    Path store = Files.createDirectories(dir.resolve("store"));
    try (BlobBackend b = Backends.open(store.toString(), BackendOptions.defaults())) {
      roundTrip(b, "app:1.0");
      assertThat(store.resolve("refs/app:1.0")).isRegularFile();
      Manifest image = image();
      Path blob = store.resolve(Digests.normalize(image.digest()));
      Files.writeString(blob, Files.readString(blob).replace("schemaVersion", "schemaVersioN"));
      assertThatThrownBy(() -> b.manifest(image.digest()))
          .isInstanceOfSatisfying(BackendException.class, e -> {
            assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
            assertThat(e.getMessage()).contains("sha256 mismatch");
          });
    }
  }

  @Test
  void ociLayout_tagsAreIndexRefNames() throws Exception {
    Path layout = Files.createDirectories(dir.resolve("layout"));
    Files.writeString(layout.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    Path blobs = Files.createDirectories(layout.resolve("blobs/sha256"));
    Manifest image = image();
    Files.write(blobs.resolve(Digests.normalize(image.digest())), image.bytes());
    Files.writeString(layout.resolve("index.json"), "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\""
        + Manifest.OCI_MANIFEST + "\",\"digest\":\"" + image.digest() + "\",\"size\":" + image.size()
        + ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"stable\"}}]}");
    try (BlobBackend b = Backends.open(layout.toString(), BackendOptions.defaults())) {
      assertThat(b.manifest("stable").bytes()).isEqualTo(image.bytes());
      assertThatThrownBy(() -> b.manifest("other")).isInstanceOfSatisfying(BackendException.class,
          e -> assertThat(e.isNotFound()).isTrue());
      assertThatThrownBy(() -> b.putManifest("other", image)).isInstanceOfSatisfying(
          BackendException.class, e -> assertThat(e.getMessage()).contains("cannot hold tags"));
    }
  }
}
