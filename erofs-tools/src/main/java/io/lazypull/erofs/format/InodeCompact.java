package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_inode_compact}, 32 bytes. Used only when uid, gid and nlink fit in 16
 * bits, size < 4 GiB and mtime equals the superblock build time (its i_mtime stays 0 so that
 * kernels before 6.15, which ignore it, agree with newer ones).
 */
public final class InodeCompact {
  public static final int SIZE = 32;

  public int format;      // 0-1    i_format: version (bit 0) | datalayout << 1
  public int xattrIcount; // 2-3
  public int mode;        // 4-5
  public int nlink;       // 6-7
  public long size;       // 8-11   u32
  public int mtime;       // 12-15  6.15+: seconds after sb build_time; written 0
  public int u;           // 16-19  startblk | chunk format | rdev
  public int ino;         // 20-23  32-bit serial for old stat
  public int uid;         // 24-25
  public int gid;         // 26-27
  // 28-31 reserved

  public static InodeCompact read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    InodeCompact i = new InodeCompact();
    i.format = b.getShort(p) & 0xffff;
    i.xattrIcount = b.getShort(p + 2) & 0xffff;
    i.mode = b.getShort(p + 4) & 0xffff;
    i.nlink = b.getShort(p + 6) & 0xffff;
    i.size = b.getInt(p + 8) & 0xFFFFFFFFL;
    i.mtime = b.getInt(p + 12);
    i.u = b.getInt(p + 16);
    i.ino = b.getInt(p + 20);
    i.uid = b.getShort(p + 24) & 0xffff;
    i.gid = b.getShort(p + 26) & 0xffff;
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
    b.putShort(p + 6, (short) nlink);
    b.putInt(p + 8, (int) size);
    b.putInt(p + 12, mtime);
    b.putInt(p + 16, u);
    b.putInt(p + 20, ino);
    b.putShort(p + 24, (short) uid);
    b.putShort(p + 26, (short) gid);
    b.position(p + SIZE);
  }
}
