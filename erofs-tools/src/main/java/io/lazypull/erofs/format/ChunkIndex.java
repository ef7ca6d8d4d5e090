package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_inode_chunk_index}, 8 bytes: where one chunk of a CHUNK_BASED file with
 * the INDEXES format lives. The 4-byte block-map form is just a u32 startblk on device 0.
 */
public final class ChunkIndex {
  public static final int SIZE = 8;
  public static final int BLOCK_MAP_ENTRY_SIZE = 4;

  public int startblkHi;  // 0-1   48BIT only: 0
  public int deviceId;    // 2-3   0 = primary, k = k-th extra device
  public long startblkLo; // 4-7   u32 block inside that device; NULL_ADDR = hole

  public static ChunkIndex read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    ChunkIndex c = new ChunkIndex();
    c.startblkHi = b.getShort(p) & 0xffff;
    c.deviceId = b.getShort(p + 2) & 0xffff;
    c.startblkLo = b.getInt(p + 4) & 0xFFFFFFFFL;
    b.position(p + SIZE);
    return c;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.putShort(p, (short) startblkHi);
    b.putShort(p + 2, (short) deviceId);
    b.putInt(p + 4, (int) startblkLo);
    b.position(p + SIZE);
  }

  public boolean isHole() {
    return startblkLo == Erofs.NULL_ADDR;
  }
}
