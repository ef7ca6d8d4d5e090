package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/** {@code struct erofs_inode_extended}, 64 bytes: 32-bit ids and nlink, 64-bit size, own mtime. */
public final class InodeExtended {
  public static final int SIZE = 64;

  public int format;      // 0-1    i_format, bit 0 set
  public int xattrIcount; // 2-3
  public int mode;        // 4-5
  public int nb;          // 6-7    reserved unless 48BIT: 0
  public long size;       // 8-15
  public int u;           // 16-19  startblk | chunk format | rdev
  public int ino;         // 20-23
  public long uid;        // 24-27  u32
  public long gid;        // 28-31  u32
  public long mtime;      // 32-39  s64 seconds
  public int mtimeNsec;   // 40-43
  public long nlink;      // 44-47  u32
  // 48-63 reserved

  public static InodeExtended read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    InodeExtended i = new InodeExtended();
    i.format = b.getShort(p) & 0xffff;
    i.xattrIcount = b.getShort(p + 2) & 0xffff;
    i.mode = b.getShort(p + 4) & 0xffff;
    i.nb = b.getShort(p + 6) & 0xffff;
    i.size = b.getLong(p + 8);
    i.u = b.getInt(p + 16);
    i.ino = b.getInt(p + 20);
    i.uid = b.getInt(p + 24) & 0xFFFFFFFFL;
    i.gid = b.getInt(p + 28) & 0xFFFFFFFFL;
    i.mtime = b.getLong(p + 32);
    i.mtimeNsec = b.getInt(p + 40);
    i.nlink = b.getInt(p + 44) & 0xFFFFFFFFL;
    b.position(p + SIZE);
    return i;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.put(p, new byte[SIZE]);
    b.putShort(p, (short) format);
    b.putShort(p + 2, (short) xattrIcount);
    b.putShort(p + 4, (short) mode);
    b.putShort(p + 6, (short) nb);
    b.putLong(p + 8, size);
    b.putInt(p + 16, u);
    b.putInt(p + 20, ino);
    b.putInt(p + 24, (int) uid);
    b.putInt(p + 28, (int) gid);
    b.putLong(p + 32, mtime);
    b.putInt(p + 40, mtimeNsec);
    b.putInt(p + 44, (int) nlink);
    b.position(p + SIZE);
  }
}
