package io.lazypull.erofs;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Writes the data area front to back, in block order (which is inode order): directory and
 * symlink blocks from memory, regular-file blocks streamed from their source. All-zero
 * stretches become holes of the output. Inline tails of regular files are read first, in a
 * separate short pass, so the metadata is final before anything is written.
 */
final class DataBlockWriter {
  private static final int BATCH = 1 << 20;

  private DataBlockWriter() {}

  /** Reads every regular file's inline tail into the metadata (full layout). */
  static void readTails(ImageWriter writer) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(writer.blockSize());
    for (InodePlan p : writer.plans) {
      if (p.inode.isRegular() && p.tailLen > 0) {
        try (FileContent.Reader in = p.inode.content.open()) {
          in.skip(p.size - p.tailLen, p.inode.origin);
          buf.clear().limit(p.tailLen);
          in.readFully(buf, p.inode.origin);
          writer.putTail(p, buf.flip());
        }
      }
    }
  }

  /** Writes every inode's non-inline blocks at its startblk. */
  static void write(ImageWriter writer, HashingOutput out) throws IOException {
    int blockSize = writer.blockSize();
    ByteBuffer buf = ByteBuffer.allocateDirect(BATCH);
    for (InodePlan p : writer.plans) {
      if (p.dataBlocks == 0) {
        continue;
      }
      out.skipTo(p.startBlk * blockSize);
      TreeInode n = p.inode;
      long bodyLen = p.size - p.tailLen;
      if (!n.isRegular()) {
        byte[] data = n.isDirectory() ? p.dirData : n.symlinkTarget;
        out.write(ByteBuffer.wrap(data, 0, (int) bodyLen));
        continue;
      }
      try (FileContent.Reader in = n.content.open()) {
        for (long off = 0; off < bodyLen; ) {
          int len = (int) Math.min(BATCH, bodyLen - off);
          if (in.skipHole(len)) {
            out.skip(len);
          } else {
            buf.clear().limit(len);
            in.readFully(buf, n.origin);
            buf.flip();
            if (Zeros.isAllZero(buf)) {
              out.skip(len);
            } else {
              out.write(buf);
            }
          }
          off += len;
        }
      }
    }
  }
}
