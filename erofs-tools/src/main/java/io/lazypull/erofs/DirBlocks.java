package io.lazypull.erofs;

import io.lazypull.erofs.format.Dirent;
import io.lazypull.erofs.format.Erofs;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Directory data: blocks of [dirents][names][zero padding], entries sorted by unsigned bytes
 * across all blocks, "." and ".." included. A block is closed when the next dirent and name
 * would not fit (mkfs.erofs's packing); the size is exact, the last block not padded.
 */
final class DirBlocks {
  private DirBlocks() {}

  /** One entry: name bytes, target NID (0 while sizing) and d_type. */
  record Entry(byte[] name, long nid, int fileType) {}

  /** The directory's byte size; depends only on the (sorted) names. */
  static long size(List<byte[]> sortedNames, int blockSize) {
    long full = 0;
    int used = 0;
    for (byte[] name : sortedNames) {
      int need = Dirent.SIZE + name.length;
      if (used + need > blockSize) {
        full++;
        used = 0;
      }
      used += need;
    }
    return full * blockSize + used;
  }

  /** Serializes sorted entries; the result has exactly {@link #size} bytes. */
  static byte[] encode(List<Entry> sorted, int blockSize) {
    int total = (int) size(sorted.stream().map(Entry::name).toList(), blockSize);
    ByteBuffer out = Erofs.le(ByteBuffer.allocate((int) Erofs.roundUp(total, blockSize)));
    int i = 0;
    long blockStart = 0;
    while (i < sorted.size()) {
      int used = 0;
      int end = i;
      while (end < sorted.size() && used + Dirent.SIZE + sorted.get(end).name().length <= blockSize) {
        used += Dirent.SIZE + sorted.get(end).name().length;
        end++;
      }
      int nameoff = Dirent.SIZE * (end - i);
      for (int k = i; k < end; k++) {
        Entry e = sorted.get(k);
        Dirent d = new Dirent();
        d.nid = e.nid();
        d.nameoff = nameoff;
        d.fileType = e.fileType();
        out.position((int) (blockStart + Dirent.SIZE * (k - i)));
        d.write(out);
        out.put((int) blockStart + nameoff, e.name());
        nameoff += e.name().length;
      }
      i = end;
      blockStart += blockSize;
    }
    byte[] result = new byte[total];
    out.get(0, result);
    return result;
  }
}
