package io.lazypull.erofs.oci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import io.lazypull.backend.Manifest;
import io.lazypull.erofs.Layout;
import io.lazypull.testing.TestTrees;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The reader of converted images on a blob directory (as in S3: blobs, manifests as blobs,
 * refs/NAME:TAG): what 'lazypull pull' gets, and what it refuses. No layer blob is needed.
 */
class ConvertedImageTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final Platform AMD64 = Platform.parse("linux/amd64");
  static final String DIFF1 = "sha256:" + "d1".repeat(32);
  static final String DIFF2 = "sha256:" + "d2".repeat(32);

  static ConvertedLayer layer(String fsidByte, String diffId) {
    return new ConvertedLayer(fsidByte.repeat(32), 4096, Layout.CHUNKED,
        List.of(new ConvertedLayer.Blob("sha256:" + "da".repeat(32), 100)), "sha256:" + "50".repeat(32), diffId,
        ImageFormat.OCI_LAYER_GZIP, 1234);
  }

  /** Stores an image of {@code layers} (descriptors) and {@code diffIds} under app:v1; returns the backend. */
  static BlobBackend store(List<Descriptor> layers, List<String> diffIds) throws Exception {
    Path dir = TestTrees.newDir("converted-image-");
    BlobBackend b = Backends.open(dir.toUri().toString(), BackendOptions.defaults());
    ObjectNode config = JSON.createObjectNode().put("architecture", "amd64").put("os", "linux");
    ArrayNode ids = config.putObject("rootfs").put("type", "layers").putArray("diff_ids");
    diffIds.forEach(ids::add);
    Path configFile = Files.write(dir.resolve("config.tmp"), JSON.writeValueAsBytes(config));
    Descriptor configDescriptor = new Descriptor(ImageFormat.OCI_CONFIG,
        "sha256:" + Digests.sha256Hex(configFile), Files.size(configFile));
    b.put(configFile);
    Files.delete(configFile);

    ObjectNode m = JSON.createObjectNode().put("schemaVersion", 2).put("mediaType", Manifest.OCI_MANIFEST);
    m.set("config", configDescriptor.toJson());
    ArrayNode ls = m.putArray("layers");
    layers.forEach(l -> ls.add(l.toJson()));
    Manifest image = new Manifest(Manifest.OCI_MANIFEST, JSON.writeValueAsBytes(m));
    b.putManifest(image.digest(), image);

    ObjectNode idx = JSON.createObjectNode().put("schemaVersion", 2).put("mediaType", Manifest.OCI_INDEX);
    ArrayNode entries = idx.putArray("manifests");
    entries.add(new Descriptor(Manifest.OCI_MANIFEST, image.digest(), image.size(), Map.of(), AMD64, null).toJson());
    entries.add(new Descriptor(Manifest.OCI_MANIFEST, "sha256:" + "bb".repeat(32), 10, Map.of(),
        new Platform(ImageFormat.UNKNOWN, ImageFormat.UNKNOWN, "", ""), ImageFormat.BLOBS_ARTIFACT_TYPE).toJson());
    b.putManifest("app:v1", new Manifest(Manifest.OCI_INDEX, JSON.writeValueAsBytes(idx)));
    return b;
  }

  @Test
  void read_givesTheExactBytes_theLayersAndTheDiffIds() throws Exception {
    ConvertedLayer l1 = layer("a1", DIFF1);
    ConvertedLayer l2 = layer("a2", DIFF2);
    try (BlobBackend b = store(List.of(l1.descriptor(), l2.descriptor()), List.of(DIFF1, DIFF2))) {
      ConvertedImage img = ConvertedImage.read(b, "app:v1", AMD64, "app");
      assertThat(img.index().digest()).isEqualTo(b.manifest("app:v1").digest());
      assertThat(ImageManifest.parse(img.manifest()).layers()).containsExactly(l1.descriptor(), l2.descriptor());
      assertThat("sha256:" + Digests.sha256Hex(ByteBuffer.wrap(img.configBytes()))).isEqualTo(img.config().digest());
      assertThat(img.diffIds()).containsExactly(DIFF1, DIFF2);
      assertThat(img.layers()).extracting(ConvertedLayer::fsid).containsExactly(l1.fsid(), l2.fsid());
    }
  }

  @Test
  void read_refusesAPlatformItHasNot_namingWhatItHas_butNotTheBlobsManifest() throws Exception {
    try (BlobBackend b = store(List.of(layer("a1", DIFF1).descriptor()), List.of(DIFF1))) {
      assertThatThrownBy(() -> ConvertedImage.read(b, "app:v1", Platform.parse("linux/arm64"), "app"))
          .isInstanceOf(BadManifestException.class)
          .hasMessage("app has no manifest for linux/arm64 (it has: linux/amd64)");
    }
  }

  @Test
  void read_refusesAnImageThatIsNotConverted() throws Exception {
    Descriptor source = new Descriptor(ImageFormat.OCI_LAYER_GZIP, DIFF1, 10);
    try (BlobBackend b = store(List.of(source), List.of(DIFF1))) {
      assertThatThrownBy(() -> ConvertedImage.read(b, "app:v1", AMD64, "app"))
          .hasMessage("app: layer 0 is " + ImageFormat.OCI_LAYER_GZIP + ", not a lazypull layer ("
              + ImageFormat.META_MEDIA_TYPE + "): convert the image with 'lazypull convert'");
    }
  }

  @Test
  void read_refusesLayersThatDoNotMatchTheConfig() throws Exception {
    try (BlobBackend b = store(List.of(layer("a1", DIFF1).descriptor()), List.of(DIFF2))) {
      assertThatThrownBy(() -> ConvertedImage.read(b, "app:v1", AMD64, "app"))
          .hasMessage("app: layer 0 was converted from " + DIFF1 + " but the config's diff ID is " + DIFF2);
    }
    try (BlobBackend b = store(List.of(layer("a1", DIFF1).descriptor()), List.of(DIFF1, DIFF2))) {
      assertThatThrownBy(() -> ConvertedImage.read(b, "app:v1", AMD64, "app"))
          .hasMessage("app: 1 layers but 2 diff IDs in the config");
    }
  }

  @Test
  void parse_namesTheMalformedEntry() throws Exception {
    Manifest index = new Manifest(Manifest.OCI_INDEX, "{\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"md5:1\",\"size\":1}]}"
        .getBytes(java.nio.charset.StandardCharsets.UTF_8));
    assertThatThrownBy(() -> ImageIndex.parse(index))
        .hasMessage("index " + index.digest() + " manifests[0].digest 'md5:1' is not a sha256 digest (only sha256 is supported)");
    Manifest notObject = new Manifest(Manifest.OCI_MANIFEST, "[]".getBytes(java.nio.charset.StandardCharsets.UTF_8));
    assertThatThrownBy(() -> ImageManifest.parse(notObject))
        .hasMessage("manifest " + notObject.digest() + " is not a JSON object");
  }
}
