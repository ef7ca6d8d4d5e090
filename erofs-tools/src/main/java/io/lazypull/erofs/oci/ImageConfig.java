package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * What lazypull reads of an image config: its platform and {@code rootfs.diff_ids}, the
 * uncompressed digests of the layers, lowest first (what the layers' chain IDs are made of).
 */
record ImageConfig(Platform platform, List<String> diffIds) {
  private static final ObjectMapper JSON = new ObjectMapper();

  ImageConfig {
    diffIds = List.copyOf(diffIds);
  }

  /**
   * Parses the config blob {@code digest}; a missing {@code diff_ids} is an empty list (the
   * caller compares its length with the layers').
   *
   * @throws BadManifestException for bytes that are not a JSON object, or a diff ID that is
   *     not a sha256 digest
   */
  static ImageConfig parse(byte[] bytes, String digest) throws BadManifestException {
    JsonNode cfg;
    try {
      cfg = JSON.readTree(bytes);
    } catch (IOException e) {
      cfg = null;
    }
    if (cfg == null || !cfg.isObject()) {
      throw new BadManifestException("config " + digest + " is not valid JSON");
    }
    List<String> diffIds = new ArrayList<>();
    JsonNode ids = cfg.path("rootfs").path("diff_ids");
    for (JsonNode n : ids.isArray() ? ids : JSON.createArrayNode()) {
      String diffId = n.asText("");
      if (!diffId.startsWith(Digests.SHA256_PREFIX) || !Digests.isHex(diffId.substring(Digests.SHA256_PREFIX.length()))) {
        throw new BadManifestException("config " + digest + ": diff_ids[" + diffIds.size() + "] '" + diffId
            + "' is not a sha256 digest");
      }
      diffIds.add(diffId);
    }
    return new ImageConfig(Platform.fromJson(cfg), diffIds);
  }
}
