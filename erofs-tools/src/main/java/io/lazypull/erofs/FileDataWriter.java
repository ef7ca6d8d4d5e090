package io.lazypull.erofs;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/**
 * Streams regular-file contents of a {@link Layout#FULL} image into its data blocks, and their
 * tails into the metadata. All-zero stretches are not written: the output stays sparse and
 * reads as zeros, so huge sparse files cost little.
 */
final class FileDataWriter {
  private static final int BATCH = 1 << 20;

  private FileDataWriter() {}

  static void write(ImageWriter writer, FileChannel out) throws IOException {
    int blockSize = writer.blockSize();
    ByteBuffer buf = ByteBuffer.allocateDirect(BATCH);
    for (InodePlan p : writer.plans) {
      TreeInode n = p.inode;
      if (!n.isRegular() || p.size == 0) {
        continue;
      }
      try (FileContent.Reader in = n.content.open()) {
        long bodyLen = p.size - p.tailLen;
        long base = p.startBlk * blockSize;
        for (long off = 0; off < bodyLen; ) {
          int len = (int) Math.min(BATCH, bodyLen - off);
          if (!in.skipHole(len)) {
            buf.clear().limit(len);
            in.readFully(buf, n.origin);
            buf.flip();
            if (!Zeros.isAllZero(buf)) {
              ImageWriter.writeFully(out, buf, base + off);
            }
          }
          off += len;
        }
        if (p.tailLen > 0) {
          buf.clear().limit(p.tailLen);
          in.readFully(buf, n.origin);
          writer.putTail(p, buf.flip());
        }
      }
    }
  }
}
