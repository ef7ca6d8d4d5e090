package io.lazypull.erofs.oci;

import java.util.List;
import java.util.Map;

/**
 * Names of the converted image format, version 1: media types and annotations. The format
 * itself is described in docs/containers.md ("Format"), which is the contract; these constants
 * are its spelling.
 */
public final class ImageFormat {
  private ImageFormat() {}

  /** A layer's EROFS meta blob (what the image manifest lists as the layer). */
  public static final String META_MEDIA_TYPE = "application/vnd.lazypull.erofs.meta.v1";
  /** A data blob (listed by the blobs manifest). */
  public static final String DATA_MEDIA_TYPE = "application/vnd.lazypull.erofs.data.v1";
  /** The artifact type and config media type of the blobs manifest. */
  public static final String BLOBS_ARTIFACT_TYPE = "application/vnd.lazypull.blobs.v1";
  /** The blobs manifest's config: the two bytes {}. */
  public static final String EMPTY_CONFIG = "{}";
  /** The platform of the blobs manifest in the index, so that no platform matcher picks it. */
  public static final String UNKNOWN = "unknown";

  // Index and image manifest annotations.
  public static final String SOURCE_IMAGE = "io.lazypull.source.image";
  public static final String SOURCE_REF = "io.lazypull.source.ref";

  // Layer annotations.
  public static final String FSID = "io.lazypull.fsid";
  public static final String LAYOUT = "io.lazypull.layout";
  public static final String DATA_BLOBS = "io.lazypull.data-blobs";
  public static final String SOURCE_LAYER = "io.lazypull.source.layer";
  public static final String SOURCE_DIFFID = "io.lazypull.source.diffid";
  public static final String SOURCE_MEDIA_TYPE = "io.lazypull.source.mediatype";
  public static final String SOURCE_SIZE = "io.lazypull.source.size";
  /**
   * containerd's unpacker passes a layer descriptor's annotations with this prefix to the
   * snapshotter's Prepare as labels; the fsid, layout and data blobs are repeated under it.
   */
  public static final String CONTAINERD_LABEL_PREFIX = "containerd.io/snapshot/lazypull.";

  // Source layer media types lazypull converts.
  public static final String OCI_LAYER = "application/vnd.oci.image.layer.v1.tar";
  public static final String OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
  public static final String OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
  public static final String DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar";
  public static final String DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
  /** Uncompressed layers: converted to tar-index, the layer itself is the data blob. */
  public static final List<String> UNCOMPRESSED_LAYERS = List.of(OCI_LAYER, DOCKER_LAYER);
  /** Compressed layers: converted to chunked. */
  public static final Map<String, String> COMPRESSED_LAYERS = Map.of(
      OCI_LAYER_GZIP, "gzip", DOCKER_LAYER_GZIP, "gzip", OCI_LAYER_ZSTD, "zstd");

  public static final String OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
  public static final String DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
}
