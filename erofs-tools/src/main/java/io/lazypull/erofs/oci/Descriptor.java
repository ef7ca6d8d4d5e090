package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.Digests;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An OCI content descriptor: what a manifest says about a blob or a manifest it references.
 * Only sha256 digests are accepted.
 *
 * @param mediaType the media type
 * @param digest {@code sha256:<hex>}
 * @param size the size in bytes
 * @param annotations the annotations, in their order (empty if none)
 * @param platform the platform of an index entry, or null
 * @param artifactType the artifact type of an index entry, or null
 */
public record Descriptor(String mediaType, String digest, long size, Map<String, String> annotations,
    Platform platform, String artifactType) {
  public Descriptor {
    annotations = Collections.unmodifiableMap(new LinkedHashMap<>(annotations));
  }

  public Descriptor(String mediaType, String digest, long size) {
    this(mediaType, digest, size, Map.of(), null, null);
  }

  /** The digest's bare hex. */
  public String hex() {
    return Digests.normalize(digest);
  }

  /**
   * Parses a descriptor; {@code where} names it in errors ("layers[2]"). Unknown fields are
   * ignored, as the spec asks.
   *
   * @throws BadManifestException for a missing or malformed field
   */
  static Descriptor parse(JsonNode n, String where) throws BadManifestException {
    if (!n.isObject()) {
      throw new BadManifestException(where + " is not an object");
    }
    String mediaType = n.path("mediaType").asText("");
    if (mediaType.isEmpty()) {
      throw new BadManifestException(where + ".mediaType is missing");
    }
    String digest = n.path("digest").asText("");
    if (!digest.startsWith(Digests.SHA256_PREFIX)) {
      throw new BadManifestException(where + ".digest '" + digest + "' is not a sha256 digest"
          + (digest.contains(":") ? " (only sha256 is supported)" : ""));
    }
    if (!Digests.isHex(digest.substring(Digests.SHA256_PREFIX.length()))) {
      throw new BadManifestException(where + ".digest '" + digest + "' is not 64 lowercase hex characters");
    }
    JsonNode size = n.path("size");
    if (!size.isIntegralNumber() || size.asLong() < 0) {
      throw new BadManifestException(where + ".size is missing or not a non-negative integer");
    }
    Platform platform = n.has("platform") ? Platform.fromJson(n.get("platform")) : null;
    String artifactType = n.hasNonNull("artifactType") ? n.get("artifactType").asText() : null;
    return new Descriptor(mediaType, digest, size.asLong(), annotations(n), platform, artifactType);
  }

  /** The {@code annotations} of a descriptor, manifest or index, in their order (empty if none). */
  static Map<String, String> annotations(JsonNode n) {
    Map<String, String> annotations = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = n.path("annotations").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      annotations.put(e.getKey(), e.getValue().asText());
    }
    return annotations;
  }

  ObjectNode toJson() {
    ObjectNode n = JsonNodeFactory.instance.objectNode();
    n.put("mediaType", mediaType);
    if (artifactType != null) {
      n.put("artifactType", artifactType);
    }
    n.put("digest", digest);
    n.put("size", size);
    if (!annotations.isEmpty()) {
      ObjectNode a = n.putObject("annotations");
      annotations.forEach(a::put);
    }
    if (platform != null) {
      n.set("platform", platform.toJson());
    }
    return n;
  }
}
