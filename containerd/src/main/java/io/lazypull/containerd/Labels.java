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
}
