package io.lazypull.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.Digests;
import io.lazypull.testing.TestTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link TestImage}'s Debian-ish layers (whiteouts, an opaque directory, xattrs, owners)
 * plus layers that make it a container image: a static busybox in /bin (uncompressed tar), and
 * optionally a big layer (this JDK, uncompressed) for lazy-read measurements. An OCI layout
 * with ref {@code v1}.
 */
final class RunnableImage {
  static final String JDK = "/usr/lib/jvm/java-17-openjdk-amd64";

  private RunnableImage() {}

  /** The image in {@code dir}/layout; with {@code jdk}, a last layer holding {@link #JDK}. */
  static TestImage build(Path dir, boolean jdk) throws IOException {
    TestImage image = TestImage.build(dir);
    Path stage = Files.createDirectories(dir.resolve("stage/l4"));
    Files.createDirectories(stage.resolve("bin"));
    Files.copy(Path.of("/bin/busybox"), stage.resolve("bin/busybox"));
    Files.createSymbolicLink(stage.resolve("bin/sh"), Path.of("busybox"));
    List<Path> stages = new ArrayList<>(List.of(stage));
    if (jdk) {
      Path l5 = Files.createDirectories(dir.resolve("stage/l5/usr/lib/jvm"));
      TestTrees.run(List.of("cp", "-a", JDK, l5.toString()));
      stages.add(dir.resolve("stage/l5"));
    }
    List<ObjectNode> layers = new ArrayList<>();
    for (int i = 0; i < image.layerDigests.size(); i++) {
      String hex = Digests.normalize(image.layerDigests.get(i));
      layers.add(TestImage.descriptor(image.layerTypes.get(i), hex,
          Files.size(image.layout.resolve("blobs/sha256").resolve(hex))));
    }
    int n = image.tars.size();
    for (Path s : stages) {
      n++;
      Path tar = TestTrees.gnuTar(s, dir.resolve("layer" + n + ".tar"), "--numeric-owner");
      image.tars.add(tar);
      image.diffIds.add(Digests.SHA256_PREFIX + Digests.sha256Hex(tar));
      ObjectNode d = image.blob(TestImage.TAR, tar);
      image.layerDigests.add(d.get("digest").asText());
      image.layerTypes.add(TestImage.TAR);
      layers.add(d);
    }
    ObjectNode config = TestImage.JSON.createObjectNode();
    config.put("architecture", "amd64");
    config.put("os", "linux");
    ObjectNode c = config.putObject("config");
    c.putArray("Cmd").add("/bin/sh");
    c.putArray("Env").add("PATH=/bin");
    ObjectNode rootfs = config.putObject("rootfs");
    rootfs.put("type", "layers");
    ArrayNode ids = rootfs.putArray("diff_ids");
    image.diffIds.forEach(ids::add);
    image.write(image.config(config), layers, "v1");
    return image;
  }
}
