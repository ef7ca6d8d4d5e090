package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_dirent}, 12 bytes. A directory block is n dirents, then the n names back
 * to back (no NULs), then zero padding; dirent 0's nameoff is 12 * n.
 */
public final class Dirent {
  public static final int SIZE = 12;

  public long nid;      // 0-7
  public int nameoff;   // 8-9    byte offset of the name within this directory block
  public int fileType;  // 10     FT_*
  // 11 reserved

  public static Dirent read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    Dirent d = new Dirent();
    d.nid = b.getLong(p);
    d.nameoff = b.getShort(p + 8) & 0xffff;
    d.fileType = b.get(p + 10) & 0xff;
    b.position(p + SIZE);
    return d;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.putLong(p, nid);
    b.putShort(p + 8, (short) nameoff);
    b.put(p + 10, (byte) fileType);
    b.put(p + 11, (byte) 0);
    b.position(p + SIZE);
  }
}
