package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.Digests;
import io.lazypull.backend.Manifest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarFile;

/*
 * A `docker save` archive:
 *
 *   manifest.json   [{"Config": "<path>", "RepoTags": ["name:tag", ...], "Layers": ["<path>", ...]}]
 *   <path>          the config JSON and each layer tar (legacy: <id>/layer.tar, <hex>.json;
 *                   Docker 25+: blobs/sha256/<hex>)
 *
 * There is no registry manifest, so one is made up: a Docker schema 2 manifest whose config
 * and layer descriptors carry the sha256 of the members, computed in one pass when the archive
 * is opened (legacy member names are not digests). Its io.lazypull.source.image is the config
 * digest, the image ID, since the made-up manifest's digest means nothing.
 */
final class DockerArchiveSource implements ImageSource {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int MAX_JSON = 64 << 20;

  private final Path archive;
  private final String description;
  private final TarFile tar;
  private final Map<String, TarArchiveEntry> members = new HashMap<>();
  private final Map<String, String> pathByDigest = new HashMap<>();
  private final String configDigest;
  private final Manifest manifest;
  private final String name;
  private final String tag;

  private DockerArchiveSource(Path archive, String ref, String description) throws IOException {
    this.archive = archive;
    this.description = description;
    this.tar = new TarFile(archive);
    try {
      Map<String, String> links = new HashMap<>();
      for (TarArchiveEntry e : tar.getEntries()) {
        if (e.isFile()) {
          members.put(strip(e.getName()), e);
        } else if (e.isSymbolicLink()) {
          links.put(strip(e.getName()), e.getLinkName());
        }
      }
      // skopeo and Docker link <id>/layer.tar -> ../<hex>.tar: one level, inside the archive.
      links.forEach((link, target) -> {
        String resolved = java.nio.file.Path.of(link).resolveSibling(target).normalize().toString();
        TarArchiveEntry e = members.get(resolved);
        if (e != null && !resolved.startsWith("..")) {
          members.putIfAbsent(link, e);
        }
      });
      JsonNode list = readJson("manifest.json");
      if (!list.isArray() || list.isEmpty()) {
        throw new BadManifestException(archive + ": manifest.json lists no image");
      }
      JsonNode image = choose(list, ref);
      String repoTag = ref != null ? ref : image.path("RepoTags").path(0).asText(null);
      int colon = repoTag == null ? -1 : repoTag.lastIndexOf(':');
      this.name = colon > 0 && repoTag.lastIndexOf('/') < colon ? repoTag.substring(0, colon) : repoTag;
      this.tag = colon > 0 && repoTag.lastIndexOf('/') < colon ? repoTag.substring(colon + 1) : null;

      String configPath = image.path("Config").asText("");
      byte[] config = readBytes(configPath);
      configDigest = Digests.SHA256_PREFIX + Digests.sha256Hex(java.nio.ByteBuffer.wrap(config));
      pathByDigest.put(configDigest, configPath);
      ObjectNode m = JSON.createObjectNode();
      m.put("schemaVersion", 2);
      m.put("mediaType", Manifest.DOCKER_MANIFEST);
      ObjectNode c = m.putObject("config");
      c.put("mediaType", ImageFormat.DOCKER_CONFIG);
      c.put("digest", configDigest);
      c.put("size", config.length);
      ArrayNode layers = m.putArray("layers");
      int i = 0;
      for (JsonNode p : image.path("Layers")) {
        String path = p.asText();
        String[] digestAndType = digestAndType(path, "Layers[" + i++ + "]");
        pathByDigest.put(digestAndType[0], path);
        ObjectNode l = layers.addObject();
        l.put("mediaType", digestAndType[1]);
        l.put("digest", digestAndType[0]);
        l.put("size", member(path).getSize());
      }
      this.manifest = new Manifest(Manifest.DOCKER_MANIFEST, JSON.writeValueAsBytes(m));
    } catch (IOException | RuntimeException e) {
      tar.close();
      throw e;
    }
  }

  /**
   * Opens {@code archive}; {@code ref} picks an image by one of its RepoTags when the archive
   * holds several (null: the only one).
   */
  static DockerArchiveSource open(Path archive, String ref, String description) throws IOException {
    if (!Files.isRegularFile(archive)) {
      throw new java.nio.file.NoSuchFileException(archive.toString());
    }
    return new DockerArchiveSource(archive, ref, description);
  }

  /** Whether a file is a tar with a manifest.json member (a docker-archive). */
  static boolean looksLikeOne(Path file) {
    try (TarFile t = new TarFile(file)) {
      return t.getEntries().stream().anyMatch(e -> strip(e.getName()).equals("manifest.json"));
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  private JsonNode choose(JsonNode list, String ref) throws BadManifestException {
    if (ref == null) {
      if (list.size() > 1) {
        List<String> tags = new ArrayList<>();
        list.forEach(i -> i.path("RepoTags").forEach(t -> tags.add(t.asText())));
        throw new BadManifestException(archive + " holds " + list.size()
            + " images: name one with docker-archive:" + archive + ":NAME:TAG (" + String.join(", ", tags) + ")");
      }
      return list.get(0);
    }
    for (JsonNode i : list) {
      for (JsonNode t : i.path("RepoTags")) {
        if (t.asText().equals(ref) || t.asText().equals("docker.io/" + ref)
            || t.asText().equals("docker.io/library/" + ref)) {
          return i;
        }
      }
    }
    throw new BadManifestException(archive + " has no image tagged " + ref);
  }

  /** {sha256:<hex>, media type} of a layer member: hashed in full, compression sniffed. */
  private String[] digestAndType(String path, String where) throws IOException {
    TarArchiveEntry e = member(path);
    MessageDigest md = sha256();
    byte[] head = new byte[4];
    int headLen = 0;
    try (InputStream in = tar.getInputStream(e)) {
      byte[] buf = new byte[1 << 20];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
        for (int k = 0; headLen < 4 && k < n; k++) {
          head[headLen++] = buf[k];
        }
      }
    }
    String type = switch (LayerConverter.sniff(java.util.Arrays.copyOf(head, headLen))) {
      case "gzip" -> ImageFormat.DOCKER_LAYER_GZIP;
      case "zstd" -> ImageFormat.OCI_LAYER_ZSTD;
      default -> ImageFormat.DOCKER_LAYER;
    };
    return new String[] {Digests.SHA256_PREFIX + HexFormat.of().formatHex(md.digest()), type};
  }

  private TarArchiveEntry member(String path) throws BadManifestException {
    TarArchiveEntry e = members.get(strip(path));
    if (e == null) {
      throw new BadManifestException(archive + ": manifest.json names " + path
          + ", which is not in the archive");
    }
    return e;
  }

  private byte[] readBytes(String path) throws IOException {
    TarArchiveEntry e = member(path);
    if (e.getSize() > MAX_JSON) {
      throw new BadManifestException(archive + ": " + path + " is too large for JSON");
    }
    try (InputStream in = tar.getInputStream(e)) {
      return in.readAllBytes();
    }
  }

  private JsonNode readJson(String path) throws IOException {
    byte[] bytes = readBytes(path);
    try {
      return JSON.readTree(bytes);
    } catch (IOException e) {
      throw new BadManifestException(archive + ": " + path + " is not valid JSON");
    }
  }

  private static String strip(String name) {
    return name.startsWith("./") ? name.substring(2) : name;
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public Manifest top() {
    return manifest;
  }

  @Override
  public String imageDigest(Manifest top) {
    return configDigest;
  }

  @Override
  public Manifest manifest(Descriptor d) throws IOException {
    throw new BadManifestException("a docker-archive has no manifest " + d.digest());
  }

  /** Copies the member, hashing it again: the archive may have changed since it was opened. */
  @Override
  public void fetch(Descriptor blob, Path target, LongConsumer progress) throws IOException {
    String path = pathByDigest.get(blob.digest());
    if (path == null) {
      throw new BadManifestException(archive + " has no member with " + blob.digest());
    }
    Path tmp = Files.createTempFile(target.toAbsolutePath().getParent(), ".fetch-", ".part");
    try {
      MessageDigest md = sha256();
      long total = 0;
      try (InputStream in = tar.getInputStream(member(path));
          OutputStream out = Files.newOutputStream(tmp)) {
        byte[] buf = new byte[1 << 20];
        for (int n; (n = in.read(buf)) > 0; ) {
          md.update(buf, 0, n);
          out.write(buf, 0, n);
          total += n;
          progress.accept(n);
        }
      }
      String actual = Digests.SHA256_PREFIX + HexFormat.of().formatHex(md.digest());
      if (!actual.equals(blob.digest()) || total != blob.size()) {
        throw new BadManifestException(archive + ": " + path + " changed while converting (now "
            + actual + ", " + total + " bytes)");
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public String tag() {
    return tag;
  }

  @Override
  public void close() throws IOException {
    tar.close();
  }
}
