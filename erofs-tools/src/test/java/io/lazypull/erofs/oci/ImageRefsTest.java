package io.lazypull.erofs.oci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageRefsTest {
  @TempDir Path dir;

  @Test
  void registry_tagDigestAndPort() {
    RegistryRef r = RegistryRef.parse("oci+http://127.0.0.1:5000/a/b:v1");
    assertThat(r.backendUri()).isEqualTo("oci+http://127.0.0.1:5000/a/b");
    assertThat(r.tag()).isEqualTo("v1");
    assertThat(r.digest()).isNull();
    String hex = "ab".repeat(32);
    RegistryRef d = RegistryRef.parse("oci://ghcr.io/x/y@sha256:" + hex);
    assertThat(d.tag()).isNull();
    assertThat(d.digest()).isEqualTo("sha256:" + hex);
    RegistryRef both = RegistryRef.parse("oci://ghcr.io/x/y:1.0@sha256:" + hex);
    assertThat(both.tag()).isEqualTo("1.0");
    assertThat(both.display()).isEqualTo("oci://ghcr.io/x/y:1.0@sha256:" + hex);
  }

  @Test
  void registry_dockerHubOfficialImages_getLibrary() {
    assertThat(RegistryRef.parse("oci://docker.io/busybox:1.36").repository()).isEqualTo("library/busybox");
    assertThat(RegistryRef.parse("oci://docker.io/bob/app").repository()).isEqualTo("bob/app");
  }

  @Test
  void registry_credentialsNeverInTheDisplay() {
    RegistryRef r = RegistryRef.parse("oci://bob:s3cret@ghcr.io/bob/app:1");
    assertThat(r.display()).isEqualTo("oci://ghcr.io/bob/app:1");
    assertThat(r.backendUri()).isEqualTo("oci://bob:s3cret@ghcr.io/bob/app");
    assertThatThrownBy(() -> RegistryRef.parse("oci://bob:s3cret@ghcr.io"))
        .hasMessageNotContaining("s3cret");
  }

  @Test
  void registry_badDigestOrTag_isRefused() {
    assertThatThrownBy(() -> RegistryRef.parse("oci://h/r@sha512:00"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a sha256 digest");
    assertThatThrownBy(() -> RegistryRef.parse("oci://h/r:-bad"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a tag");
  }

  @Test
  void source_pathsThatAreNoImage_areUsageErrors() throws Exception {
    BackendOptions o = BackendOptions.defaults();
    assertThatThrownBy(() -> ImageRefs.openSource(dir.resolve("nope").toString(), o))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no such image");
    assertThatThrownBy(() -> ImageRefs.openSource(dir.toString(), o))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("without an oci-layout");
    Path text = Files.writeString(dir.resolve("notes.txt"), "hello");
    assertThatThrownBy(() -> ImageRefs.openSource(text.toString(), o))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a docker-archive");
    assertThatThrownBy(() -> ImageRefs.openSource("http://example.com/x", o))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("unsupported source");
  }

  @Test
  void layout_withSeveralImagesAndNoTag_namesThem() throws Exception {
    Files.writeString(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    String d = "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:"
        + "00".repeat(32) + "\",\"size\":1,\"annotations\":{\"org.opencontainers.image.ref.name\":\"";
    Files.writeString(dir.resolve("index.json"), "{\"schemaVersion\":2,\"manifests\":[" + d + "a\"}}," + d + "b\"}}]}");
    assertThatThrownBy(() -> ImageRefs.openSource("oci:" + dir, BackendOptions.defaults()))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("holds 2 images")
        .hasMessageContaining("(a, b)");
  }

  @Test
  void destination_anOciLayout_isRefusedBeforeAnythingIsDone() throws Exception {
    Files.writeString(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    for (String dest : new String[] {dir.toString(), dir.toUri().toString()}) {
      assertThatThrownBy(() -> ImageRefs.openDestination(dest, "a:b", null, BackendOptions.defaults()))
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("is an OCI layout");
    }
  }
}
