package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.erofs.Layout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What each source layer was converted to, under the work directory:
 * {@code layers/<source layer hex>.<options>.json}, written once its blobs are pushed. A layer
 * found here whose blobs the destination has is not fetched or converted again. Entries are
 * hints: a destination that lacks a blob gets the layer converted again, and an unreadable
 * entry is ignored.
 */
final class LayerCache {
  private static final Logger log = LoggerFactory.getLogger(LayerCache.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Bumped when the converter's output for the same input changes. */
  private static final String VERSION = "v1";

  private final Path dir;

  LayerCache(Path workDir) {
    this.dir = workDir.resolve("layers");
  }

  /** The file name part for the conversion options of a layer of this media type. */
  static String options(String mediaType, int chunkSize, boolean tarIndex) {
    return tarIndex && ImageFormat.UNCOMPRESSED_LAYERS.contains(mediaType) ? VERSION + ".tar-index"
        : VERSION + ".chunked-" + chunkSize;
  }

  private Path file(String sourceHex, String options) {
    return dir.resolve(sourceHex + "." + options + ".json");
  }

  Optional<ConvertedLayer> get(String sourceHex, String options) {
    Path f = file(sourceHex, options);
    if (!Files.isRegularFile(f)) {
      return Optional.empty();
    }
    try {
      JsonNode n = JSON.readTree(f.toFile());
      List<ConvertedLayer.Blob> blobs = new ArrayList<>();
      for (JsonNode b : n.path("dataBlobs")) {
        blobs.add(new ConvertedLayer.Blob(b.path("digest").asText(), b.path("size").asLong()));
      }
      return Optional.of(new ConvertedLayer(n.path("fsid").asText(), n.path("metaSize").asLong(),
          Layout.fromCliName(n.path("layout").asText()), blobs, n.path("sourceLayer").asText(),
          n.path("sourceDiffId").asText(), n.path("sourceMediaType").asText(),
          n.path("sourceSize").asLong()));
    } catch (IOException | RuntimeException e) {
      log.debug("ignoring the unreadable cache entry {}: {}", f, e.toString());
      return Optional.empty();
    }
  }

  void put(String sourceHex, String options, ConvertedLayer layer) throws IOException {
    ObjectNode n = JSON.createObjectNode();
    n.put("fsid", layer.fsid());
    n.put("metaSize", layer.metaSize());
    n.put("layout", layer.layout().cliName());
    ArrayNode blobs = n.putArray("dataBlobs");
    for (ConvertedLayer.Blob b : layer.dataBlobs()) {
      blobs.addObject().put("digest", b.digest()).put("size", b.size());
    }
    n.put("sourceLayer", layer.sourceLayer());
    n.put("sourceDiffId", layer.sourceDiffId());
    n.put("sourceMediaType", layer.sourceMediaType());
    n.put("sourceSize", layer.sourceSize());
    Files.createDirectories(dir);
    Path tmp = Files.createTempFile(dir, ".entry-", ".tmp");
    try {
      Files.write(tmp, JSON.writeValueAsBytes(n));
      Files.move(tmp, file(sourceHex, options), StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }
}
