package io.lazypull.containerd;

/**
 * The snapshot labels of lazypull layers. containerd passes a proxy snapshotter only the labels
 * under {@code containerd.io/snapshot/} and {@code containerd.io/snapshot.ref} (its metadata
 * store filters the rest), so lazypull's live under {@code containerd.io/snapshot/lazypull.}.
 */
public final class Labels {
  private Labels() {}

  /** The chain ID the snapshot being prepared becomes: containerd's remote-snapshot protocol. */
  public static final String SNAPSHOT_REF = "containerd.io/snapshot.ref";
  /** The layer's lazypull meta blob, hex sha256 (the EROFS fsid). */
  public static final String FSID = "containerd.io/snapshot/lazypull.fsid";
  /** The backend URI that serves the layer's blobs (oci://..., s3://..., file://...). */
  public static final String BACKEND = "containerd.io/snapshot/lazypull.backend";
  /** The source layer's digest (informational: which layer this is). */
  public static final String LAYER = "containerd.io/snapshot/lazypull.layer";
  /**
   * The image reference CRI adds to each layer's Prepare (containerd's unpacker passes the
   * layer annotations with the fsid too, but nothing names a backend): without a
   * {@link #BACKEND} label, the backend is that image's registry repository over https.
   */
  public static final String CRI_IMAGE_REF = "containerd.io/snapshot/cri.image-ref";

  /**
   * {@code oci://HOST/REPO} for an image reference {@code HOST/REPO[:TAG][@DIGEST]} (Docker
   * Hub's short names get docker.io and library/); null for null or a reference without a
   * registry host.
   */
  static String backendOfImageRef(String ref) {
    if (ref == null || ref.isBlank()) {
      return null;
    }
    String r = ref.strip();
    int at = r.indexOf('@');
    if (at >= 0) {
      r = r.substring(0, at);
    }
    int slash = r.indexOf('/');
    int colon = r.lastIndexOf(':');
    if (colon > slash) {
      r = r.substring(0, colon); // the tag
    }
    slash = r.indexOf('/');
    String first = slash < 0 ? "" : r.substring(0, slash);
    boolean hasHost = first.contains(".") || first.contains(":") || first.equals("localhost");
    if (!hasHost) {
      r = "docker.io/" + (slash < 0 ? "library/" : "") + r;
    }
    return "oci://" + r;
  }
}
