package io.lazypull.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.github.luben.zstd.ZstdOutputStream;
import io.lazypull.backend.Digests;
import io.lazypull.testing.TestTrees;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.zip.GZIPOutputStream;

/**
 * A four-layer source image as an OCI layout (ref name {@code v1}), built from files of
 * Debian packages under /usr/share with GNU tar, like a small Debian-ish root file system:
 *
 * <pre>
 * layer 1, tar+gzip   usr/share/doc/{bash,tar,gzip,coreutils}, usr/share/common-licenses,
 *                     usr/share/zoneinfo/Europe, etc/motd, etc/motd.link -> motd, a hard link,
 *                     opt/blob (3 MiB: random, repeated and zero MiB, chunk dedup and holes),
 *                     opt/tagged (xattr user.lazypull=layer1), opt/private (0700, uid 1000)
 * layer 2, tar        usr/share/doc/tar/ opaque with one new file, whiteouts of
 *                     usr/share/doc/gzip (a directory) and etc/motd (a file)
 * layer 3, tar+zstd   etc/motd again, whiteout of usr/share/common-licenses/GPL-2,
 *                     usr/share/perl5/Debian
 * layer 4, tar+gzip   only a whiteout (usr/share/perl5/Debian/DebConf) and directories: no
 *                     file data, so its data blob is the empty blob
 * </pre>
 *
 * {@link #tars} keeps each layer's uncompressed tar, to check conversions against.
 */
final class TestImage {
  static final String OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
  static final ObjectMapper JSON = new ObjectMapper();

  final Path layout;
  final List<Path> tars = new ArrayList<>();
  final List<String> layerDigests = new ArrayList<>();
  final List<String> layerTypes = new ArrayList<>();
  final List<String> diffIds = new ArrayList<>();
  String configDigest;
  String manifestDigest;

  /** An image to be written into {@code layout} (which exists, blobs/sha256 included). */
  TestImage(Path layout) {
    this.layout = layout;
  }

  static final String GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
  static final String TAR = "application/vnd.oci.image.layer.v1.tar";
  static final String ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";

  /** The image with layers gzip, plain, zstd, gzip. */
  static TestImage build(Path dir) throws IOException {
    return build(dir, GZIP, TAR, ZSTD, GZIP);
  }

  /** The image with these layer media types (skopeo 1.9 cannot write zstd layers into a docker-archive). */
  static TestImage build(Path dir, String... types) throws IOException {
    TestImage image = new TestImage(dir.resolve("layout"));
    Files.createDirectories(image.layout.resolve("blobs/sha256"));
    Files.writeString(image.layout.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    Path stage = Files.createDirectories(dir.resolve("stage"));

    Path l1 = Files.createDirectories(stage.resolve("l1"));
    Files.createDirectories(l1.resolve("usr/share/doc"));
    Files.createDirectories(l1.resolve("usr/share/zoneinfo"));
    for (String d : List.of("bash", "tar", "gzip", "coreutils")) {
      TestTrees.run(List.of("cp", "-a", "/usr/share/doc/" + d, l1.resolve("usr/share/doc").toString()));
    }
    TestTrees.run(List.of("cp", "-a", "/usr/share/common-licenses", l1.resolve("usr/share").toString()));
    TestTrees.run(List.of("cp", "-a", "/usr/share/zoneinfo/Europe", l1.resolve("usr/share/zoneinfo").toString()));
    Files.createDirectories(l1.resolve("etc"));
    Files.writeString(l1.resolve("etc/motd"), "layer 1\n");
    Files.createSymbolicLink(l1.resolve("etc/motd.link"), Path.of("motd"));
    Files.createLink(l1.resolve("usr/share/doc/bash/copyright.hardlink"), l1.resolve("usr/share/doc/bash/copyright"));
    Files.createDirectories(l1.resolve("opt"));
    byte[] mib = new byte[1 << 20];
    new Random(11).nextBytes(mib);
    try (OutputStream out = Files.newOutputStream(l1.resolve("opt/blob"))) {
      out.write(mib);
      out.write(mib); // a repeated chunk: stored once
      out.write(new byte[1 << 20]); // a zero chunk: a hole
      out.write(mib, 0, 12345);
    }
    Files.writeString(l1.resolve("opt/tagged"), "with an xattr\n");
    TestTrees.run(List.of("setfattr", "-n", "user.lazypull", "-v", "layer1", l1.resolve("opt/tagged").toString()));
    Files.createDirectories(l1.resolve("opt/private"));
    Files.writeString(l1.resolve("opt/private/secret"), "mode 0600\n");
    TestTrees.run(List.of("chmod", "0700", l1.resolve("opt/private").toString()));
    TestTrees.run(List.of("chmod", "0600", l1.resolve("opt/private/secret").toString()));
    TestTrees.run(List.of("chown", "-R", "1000:1000", l1.resolve("opt/private").toString()));

    Path l2 = Files.createDirectories(stage.resolve("l2"));
    Files.createDirectories(l2.resolve("usr/share/doc/tar"));
    Files.createDirectories(l2.resolve("etc"));
    Files.writeString(l2.resolve("usr/share/doc/tar/.wh..wh..opq"), "");
    Files.writeString(l2.resolve("usr/share/doc/tar/NEWS.layer2"), "tar's docs replaced in layer 2\n");
    Files.writeString(l2.resolve("usr/share/doc/.wh.gzip"), "");
    Files.writeString(l2.resolve("etc/.wh.motd"), "");

    Path l3 = Files.createDirectories(stage.resolve("l3"));
    Files.createDirectories(l3.resolve("etc"));
    Files.createDirectories(l3.resolve("usr/share/common-licenses"));
    Files.createDirectories(l3.resolve("usr/share/perl5"));
    Files.writeString(l3.resolve("etc/motd"), "layer 3\n");
    Files.writeString(l3.resolve("usr/share/common-licenses/.wh.GPL-2"), "");
    TestTrees.run(List.of("cp", "-a", "/usr/share/perl5/Debian", l3.resolve("usr/share/perl5").toString()));

    List<ObjectNode> layers = new ArrayList<>();
    Path l4 = Files.createDirectories(stage.resolve("l4/usr/share/perl5/Debian")).getParent()
        .getParent().getParent().getParent();
    Files.writeString(l4.resolve("usr/share/perl5/Debian/.wh.DebConf"), "");

    Path[] stages = {l1, l2, l3, l4};
    for (int i = 0; i < stages.length; i++) {
      Path tar = TestTrees.gnuTar(stages[i], dir.resolve("layer" + (i + 1) + ".tar"), "--numeric-owner");
      image.tars.add(tar);
      image.diffIds.add(Digests.SHA256_PREFIX + Digests.sha256Hex(tar));
      Path blob = compress(tar, types[i]);
      ObjectNode d = image.blob(types[i], blob);
      image.layerDigests.add(d.get("digest").asText());
      image.layerTypes.add(types[i]);
      layers.add(d);
    }
    ObjectNode config = JSON.createObjectNode();
    config.put("architecture", "amd64");
    config.put("os", "linux");
    config.putObject("config").putArray("Cmd").add("/bin/sh");
    ObjectNode rootfs = config.putObject("rootfs");
    rootfs.put("type", "layers");
    ArrayNode ids = rootfs.putArray("diff_ids");
    image.diffIds.forEach(ids::add);
    image.write(image.config(config), layers, "v1");
    return image;
  }

  /** Writes the config and a manifest of these layers, and points index.json's {@code ref} at it. */
  void write(ObjectNode configDescriptor, List<ObjectNode> layers, String ref) throws IOException {
    configDigest = configDescriptor.get("digest").asText();
    ObjectNode m = JSON.createObjectNode();
    m.put("schemaVersion", 2);
    m.put("mediaType", OCI_MANIFEST);
    m.set("config", configDescriptor);
    ArrayNode ls = m.putArray("layers");
    layers.forEach(ls::add);
    ObjectNode d = blob(OCI_MANIFEST, JSON.writeValueAsBytes(m));
    manifestDigest = d.get("digest").asText();
    d.putObject("annotations").put("org.opencontainers.image.ref.name", ref);
    ObjectNode index = JSON.createObjectNode();
    index.put("schemaVersion", 2);
    index.putArray("manifests").add(d);
    Files.write(layout.resolve("index.json"), JSON.writeValueAsBytes(index));
  }

  ObjectNode config(ObjectNode config) throws IOException {
    return blob("application/vnd.oci.image.config.v1+json", JSON.writeValueAsBytes(config));
  }

  ObjectNode blob(String mediaType, byte[] bytes) throws IOException {
    String hex = Digests.sha256Hex(ByteBuffer.wrap(bytes));
    Files.write(layout.resolve("blobs/sha256").resolve(hex), bytes);
    return descriptor(mediaType, hex, bytes.length);
  }

  ObjectNode blob(String mediaType, Path file) throws IOException {
    String hex = Digests.sha256Hex(file);
    Path target = layout.resolve("blobs/sha256").resolve(hex);
    Files.copy(file, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    return descriptor(mediaType, hex, Files.size(file));
  }

  static ObjectNode descriptor(String mediaType, String hex, long size) {
    ObjectNode d = JSON.createObjectNode();
    d.put("mediaType", mediaType);
    d.put("digest", Digests.SHA256_PREFIX + hex);
    d.put("size", size);
    return d;
  }

  private static Path compress(Path tar, String mediaType) throws IOException {
    if (mediaType.endsWith("+gzip")) {
      Path out = tar.resolveSibling(tar.getFileName() + ".gz");
      try (InputStream in = Files.newInputStream(tar);
          OutputStream o = new GZIPOutputStream(Files.newOutputStream(out))) {
        in.transferTo(o);
      }
      return out;
    }
    if (mediaType.endsWith("+zstd")) {
      Path out = tar.resolveSibling(tar.getFileName() + ".zst");
      try (InputStream in = Files.newInputStream(tar);
          OutputStream o = new ZstdOutputStream(Files.newOutputStream(out))) {
        in.transferTo(o);
      }
      return out;
    }
    return tar;
  }

  /**
   * What a layer's EROFS image must show: the tar extracted by GNU tar, with OCI whiteouts
   * turned into overlayfs ones as mkfs.erofs --aufs does (.wh.NAME -> NAME, a character device
   * 0:0 with mode 0, owner and mtime of the .wh. entry, and an empty trusted.overlay.origin on
   * its directory; .wh..wh..opq -> trusted.overlay.opaque=y on its directory).
   */
  static Path expectedTree(Path tar, Path dir) throws IOException {
    Files.createDirectories(dir);
    TestTrees.run(List.of("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf",
        tar.toString(), "-C", dir.toString()));
    List<Path> whiteouts;
    try (var s = Files.walk(dir)) {
      whiteouts = s.filter(p -> p.getFileName().toString().startsWith(".wh.")).toList();
    }
    for (Path w : whiteouts) {
      Path parent = w.getParent();
      java.time.Instant parentTime = Files.getLastModifiedTime(parent).toInstant();
      String name = w.getFileName().toString();
      if (name.equals(".wh..wh..opq")) {
        Files.delete(w);
        TestTrees.run(List.of("setfattr", "-n", "trusted.overlay.opaque", "-v", "y", parent.toString()));
      } else {
        java.time.Instant t = Files.getLastModifiedTime(w).toInstant();
        Object uid = Files.getAttribute(w, "unix:uid");
        Object gid = Files.getAttribute(w, "unix:gid");
        Files.delete(w);
        Path node = parent.resolve(name.substring(4));
        TestTrees.run(List.of("mknod", "-m", "000", node.toString(), "c", "0", "0"));
        TestTrees.run(List.of("chown", uid + ":" + gid, node.toString()));
        TestTrees.setMtime(node, t);
        TestTrees.run(List.of("setfattr", "-n", "trusted.overlay.origin", parent.toString()));
      }
      TestTrees.setMtime(parent, parentTime);
    }
    return dir;
  }

  /**
   * What the image's root file system must show: the layers extracted by GNU tar in order,
   * each one's whiteouts applied first (.wh.NAME removes NAME, .wh..wh..opq empties its
   * directory), as containerd's applier does.
   */
  static Path mergedTree(List<Path> tars, Path dir) throws IOException {
    Files.createDirectories(dir);
    for (Path tar : tars) {
      try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(
          Files.newInputStream(tar))) {
        for (var e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
          Path p = dir.resolve(e.getName()).normalize();
          String name = p.getFileName() == null ? "" : p.getFileName().toString();
          if (name.equals(".wh..wh..opq")) {
            try (var children = Files.list(p.getParent())) {
              for (Path c : children.toList()) {
                TestTrees.deleteQuietly(c);
              }
            }
          } else if (name.startsWith(".wh.")) {
            TestTrees.deleteQuietly(p.resolveSibling(name.substring(4)));
          }
        }
      }
      TestTrees.run(List.of("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--exclude=.wh.*",
          "-xpf", tar.toString(), "-C", dir.toString()));
    }
    return dir;
  }
}
