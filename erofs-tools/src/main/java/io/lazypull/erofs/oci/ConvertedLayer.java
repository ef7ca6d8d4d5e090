package io.lazypull.erofs.oci;

import io.lazypull.backend.Digests;
import io.lazypull.erofs.Layout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One converted layer: its meta blob (named by the fsid), its layout, its data blobs and the
 * source layer it came from. This is what a layer descriptor of a converted image manifest
 * says in its annotations ({@link #annotations()}, {@link #fromDescriptor}).
 *
 * @param fsid the meta blob's sha256 hex
 * @param metaSize the meta blob's size
 * @param layout {@link Layout#CHUNKED} or {@link Layout#TAR_INDEX}
 * @param dataBlobs the data blobs, in device order; a size is -1 where it is not known
 * @param sourceLayer the source layer's digest
 * @param sourceDiffId the source layer's uncompressed digest
 * @param sourceMediaType the source layer's media type
 * @param sourceSize the source layer's size
 */
public record ConvertedLayer(String fsid, long metaSize, Layout layout, List<Blob> dataBlobs,
    String sourceLayer, String sourceDiffId, String sourceMediaType, long sourceSize) {

  /** A data blob: {@code sha256:<hex>} and its size (-1: unknown). */
  public record Blob(String digest, long size) {}

  public ConvertedLayer {
    dataBlobs = List.copyOf(dataBlobs);
  }

  /** The descriptor of the meta blob in an image manifest, annotated. */
  public Descriptor descriptor() {
    return new Descriptor(ImageFormat.META_MEDIA_TYPE, Digests.SHA256_PREFIX + fsid, metaSize,
        annotations(), null, null);
  }

  /** The layer descriptor's annotations (docs/containers.md). */
  public Map<String, String> annotations() {
    Map<String, String> a = new LinkedHashMap<>();
    String blobs = String.join(",", dataBlobs.stream().map(Blob::digest).toList());
    a.put(ImageFormat.FSID, fsid);
    a.put(ImageFormat.LAYOUT, layout.cliName());
    a.put(ImageFormat.DATA_BLOBS, blobs);
    a.put(ImageFormat.SOURCE_LAYER, sourceLayer);
    a.put(ImageFormat.SOURCE_DIFFID, sourceDiffId);
    a.put(ImageFormat.SOURCE_MEDIA_TYPE, sourceMediaType);
    a.put(ImageFormat.SOURCE_SIZE, Long.toString(sourceSize));
    a.put(ImageFormat.CONTAINERD_LABEL_PREFIX + "fsid", fsid);
    a.put(ImageFormat.CONTAINERD_LABEL_PREFIX + "layout", layout.cliName());
    a.put(ImageFormat.CONTAINERD_LABEL_PREFIX + "data-blobs", blobs);
    return a;
  }

  /**
   * Reads a converted layer from its descriptor in an image manifest (data blob sizes are not
   * in it: -1).
   *
   * @throws BadManifestException if it is not a lazypull meta blob or lacks an annotation
   */
  public static ConvertedLayer fromDescriptor(Descriptor d) throws BadManifestException {
    if (!d.mediaType().equals(ImageFormat.META_MEDIA_TYPE)) {
      throw new BadManifestException("layer " + d.digest() + " has media type " + d.mediaType()
          + ", not " + ImageFormat.META_MEDIA_TYPE + ": not a converted layer");
    }
    Map<String, String> a = d.annotations();
    String fsid = required(a, ImageFormat.FSID, d);
    if (!fsid.equals(d.hex())) {
      throw new BadManifestException("layer " + d.digest() + ": " + ImageFormat.FSID + " " + fsid
          + " is not the meta blob's digest");
    }
    Layout layout;
    try {
      layout = Layout.fromCliName(required(a, ImageFormat.LAYOUT, d));
    } catch (IllegalArgumentException e) {
      throw new BadManifestException("layer " + d.digest() + ": " + e.getMessage());
    }
    List<Blob> blobs = new ArrayList<>();
    for (String b : required(a, ImageFormat.DATA_BLOBS, d).split(",")) {
      try {
        blobs.add(new Blob(Digests.SHA256_PREFIX + Digests.normalize(b.trim()), -1));
      } catch (IllegalArgumentException e) {
        throw new BadManifestException("layer " + d.digest() + ": " + ImageFormat.DATA_BLOBS + ": "
            + e.getMessage());
      }
    }
    long sourceSize;
    try {
      sourceSize = Long.parseLong(a.getOrDefault(ImageFormat.SOURCE_SIZE, "-1"));
    } catch (NumberFormatException e) {
      sourceSize = -1;
    }
    return new ConvertedLayer(fsid, d.size(), layout, blobs, a.get(ImageFormat.SOURCE_LAYER),
        a.get(ImageFormat.SOURCE_DIFFID), a.get(ImageFormat.SOURCE_MEDIA_TYPE), sourceSize);
  }

  private static String required(Map<String, String> a, String key, Descriptor d)
      throws BadManifestException {
    String v = a.get(key);
    if (v == null || v.isEmpty()) {
      throw new BadManifestException("layer " + d.digest() + " has no " + key + " annotation");
    }
    return v;
  }
}
