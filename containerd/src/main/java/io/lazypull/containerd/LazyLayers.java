package io.lazypull.containerd;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Mounts lazypull layers for the snapshotter: each is an EROFS image (its meta blob named by
 * the fsid) whose blobs a backend serves on demand. The cli implements it with the stack of
 * 'lazypull up' (holder, front end, daemon).
 */
public interface LazyLayers {
  /**
   * Mounts layer {@code fsid}, whose blobs {@code backend} (a backend URI) serves, read-only on
   * {@code target}, an empty directory; returns once the mount exists.
   */
  void mount(String fsid, String backend, Path target) throws IOException;

  /** Unmounts {@code target} (detached if it is busy). */
  void unmount(Path target) throws IOException;
}
