package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.backend.Manifest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An image index (OCI, or a Docker manifest list) as a reader sees it: its entries and its
 * annotations. The exact bytes stay in the {@link Manifest} it was parsed from.
 *
 * @param digest the index's digest
 * @param manifests the entries, in their order
 * @param annotations the index's annotations, in their order (empty if none)
 */
public record ImageIndex(String digest, List<Descriptor> manifests, Map<String, String> annotations) {
  public ImageIndex {
    manifests = List.copyOf(manifests);
    annotations = Collections.unmodifiableMap(new LinkedHashMap<>(annotations));
  }

  /**
   * Parses an index; unknown fields are ignored.
   *
   * @throws BadManifestException if it is not an index, or an entry is malformed (the message
   *     names it: "index sha256:... manifests[2].digest ...")
   */
  public static ImageIndex parse(Manifest m) throws BadManifestException {
    String where = "index " + m.digest();
    if (!m.isIndex()) {
      throw new BadManifestException(where + " has media type " + m.mediaType() + ", not an index");
    }
    JsonNode json = ImageManifest.json(m, where);
    List<Descriptor> entries = new ArrayList<>();
    for (JsonNode n : json.path("manifests")) {
      entries.add(Descriptor.parse(n, where + " manifests[" + entries.size() + "]"));
    }
    return new ImageIndex(m.digest(), entries, Descriptor.annotations(json));
  }

  /**
   * The entries that are images to run: image manifests (OCI or Docker) whose platform is not
   * unknown/unknown (attestations, a lazypull image's blobs manifest).
   */
  public List<Descriptor> images() {
    return manifests.stream()
        .filter(d -> d.platform() == null || !d.platform().isUnknown())
        .filter(d -> ImageManifest.isImageManifest(d.mediaType()))
        .toList();
  }

  /**
   * The first image (of {@link #images()}) whose platform {@code platform} accepts; an entry
   * without a platform fits any.
   */
  public Optional<Descriptor> image(Platform platform) {
    return images().stream().filter(d -> d.platform() == null || platform.accepts(d.platform())).findFirst();
  }
}
