package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_xattr_ibody_header}, 12 bytes right after an inode, followed by
 * h_shared_count u32 shared-xattr ids and then the inline entries. The whole body is
 * 12 + 4 * (i_xattr_icount - 1) bytes; icount 1 (a bare header) is rejected by the kernel.
 */
public final class XattrIbodyHeader {
  public static final int SIZE = 12;

  public int nameFilter;   // 0-3   bloom filter, only with COMPAT_XATTR_FILTER: 0
  public int sharedCount;  // 4     u8
  // 5-11 reserved

  public static XattrIbodyHeader read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    XattrIbodyHeader h = new XattrIbodyHeader();
    h.nameFilter = b.getInt(p);
    h.sharedCount = b.get(p + 4) & 0xff;
    b.position(p + SIZE);
    return h;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.put(p, new byte[SIZE]);
    b.putInt(p, nameFilter);
    b.put(p + 4, (byte) sharedCount);
    b.position(p + SIZE);
  }

  /** Body size in bytes for an i_xattr_icount value. */
  public static int ibodySize(int icount) {
    return icount == 0 ? 0 : SIZE + 4 * (icount - 1);
  }

  /** i_xattr_icount for a body size (a multiple of 4, > 12). */
  public static int icount(int ibodySize) {
    return ibodySize == 0 ? 0 : (ibodySize - SIZE) / 4 + 1;
  }
}
