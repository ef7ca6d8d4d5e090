package io.lazypull.erofs;

import java.nio.file.Path;
import java.util.Optional;

/**
 * What {@link Mkfs} made.
 *
 * @param layout the layout used
 * @param image the image (meta blob) written
 * @param inodes number of inodes
 * @param erofsBytes the EROFS image proper: superblock blocks * block size
 * @param imageBytes the whole file, including a blob index trailer if any
 * @param fsid SHA-256 hex of the whole image file (trailer included): the image's name
 * @param dataBlob the data blob (chunked, tar-index), absent for full images
 */
public record MkfsResult(Layout layout, Path image, long inodes, long erofsBytes, long imageBytes,
    String fsid, Optional<DataBlob> dataBlob) {

  /** A data blob: its file (named by its digest), size and SHA-256 hex (the device tag). */
  public record DataBlob(Path path, long size, String sha256Hex) {}
}
