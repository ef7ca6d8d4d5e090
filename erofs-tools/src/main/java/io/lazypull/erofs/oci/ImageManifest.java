package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.backend.Manifest;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An image manifest (OCI, or Docker schema 2) as a reader sees it: its config and layer
 * descriptors and its annotations. The exact bytes stay in the {@link Manifest} it was parsed
 * from.
 *
 * @param digest the manifest's digest
 * @param config the config descriptor
 * @param layers the layer descriptors, lowest layer first
 * @param annotations the manifest's annotations, in their order (empty if none)
 */
public record ImageManifest(String digest, Descriptor config, List<Descriptor> layers,
    Map<String, String> annotations) {
  private static final ObjectMapper JSON = new ObjectMapper();

  public ImageManifest {
    layers = List.copyOf(layers);
    annotations = Collections.unmodifiableMap(new LinkedHashMap<>(annotations));
  }

  /**
   * Parses an image manifest; unknown fields are ignored.
   *
   * @throws BadManifestException if it is not an image manifest of schema version 2, or its
   *     config or a layer descriptor is malformed (the message names it: "manifest sha256:...
   *     layers[2].digest ...")
   */
  public static ImageManifest parse(Manifest m) throws BadManifestException {
    String where = "manifest " + m.digest();
    if (!isImageManifest(m.mediaType())) {
      throw new BadManifestException(where + " has media type " + m.mediaType() + ", not an image manifest");
    }
    JsonNode json = json(m, where);
    if (json.path("schemaVersion").asInt(0) != 2) {
      throw new BadManifestException(where + ": schemaVersion is not 2");
    }
    Descriptor config = Descriptor.parse(json.path("config"), where + " config");
    if (!json.path("layers").isArray()) {
      throw new BadManifestException(where + ": layers is missing");
    }
    List<Descriptor> layers = new ArrayList<>();
    for (JsonNode n : json.path("layers")) {
      layers.add(Descriptor.parse(n, where + " layers[" + layers.size() + "]"));
    }
    return new ImageManifest(m.digest(), config, layers, Descriptor.annotations(json));
  }

  /** Whether a media type is an image manifest's: OCI or Docker schema 2. */
  static boolean isImageManifest(String mediaType) {
    return mediaType.equals(Manifest.OCI_MANIFEST) || mediaType.equals(Manifest.DOCKER_MANIFEST);
  }

  /** A manifest's bytes as a JSON object; {@code where} names it in the error. */
  static JsonNode json(Manifest m, String where) throws BadManifestException {
    try {
      JsonNode n = JSON.readTree(m.bytes());
      if (n == null || !n.isObject()) {
        throw new BadManifestException(where + " is not a JSON object");
      }
      return n;
    } catch (BadManifestException e) {
      throw e;
    } catch (IOException e) {
      throw new BadManifestException(where + " is not valid JSON");
    }
  }
}
