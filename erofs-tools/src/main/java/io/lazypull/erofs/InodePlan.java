package io.lazypull.erofs;

/**
 * The on-disk decisions for one {@link TreeInode}: NID, compact or extended form, data layout,
 * where its blocks, inline tail and chunk indexes go. Filled by {@link ImageWriter#place}.
 */
final class InodePlan {
  final TreeInode inode;
  /** 1..N in tree order: the 32-bit i_ino of old stat. */
  final int ino;
  long nlink;
  /** Directories: the encoded entries (NIDs filled in by the writer); null otherwise. */
  byte[] dirData;
  /** The on-disk i_size: content length, target length, or directory byte size. */
  long size;

  boolean extended;
  byte[] xattrBody;
  int datalayout;
  long nid;
  /** Absolute byte position of the inode in the image. */
  long pos;
  /** FLAT layouts: first block of the non-inline part (NULL_ADDR if none). */
  long startBlk;
  /** FLAT layouts: number of blocks in the data area. */
  long dataBlocks;
  /** FLAT_INLINE: length of the tail stored after the inode (and its position). */
  int tailLen;
  long tailPos;

  /** CHUNK_BASED: chunk size bits (log2 bytes), device id and per-chunk block (NULL_ADDR = hole). */
  int chunkBits;
  int chunkDevice;
  long[] chunkBlocks;
  long chunkIndexPos;

  InodePlan(TreeInode inode, int ino) {
    this.inode = inode;
    this.ino = ino;
  }

  boolean isChunked() {
    return chunkBlocks != null;
  }
}
