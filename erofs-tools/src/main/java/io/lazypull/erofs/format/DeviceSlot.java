package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/** {@code struct erofs_deviceslot}: one 128-byte entry of the device table. */
public final class DeviceSlot {
  public static final int SIZE = 128;
  public static final int TAG_SIZE = 64;

  public final byte[] tag = new byte[TAG_SIZE]; // 0-63    e.g. sha256 hex of the blob, NUL-padded
  public long blocks;                           // 64-67   u32, device size in B-blocks
  public long uniaddr;                          // 68-71   u32, start in the unified address space
  // 72-127 reserved (48-bit high halves): zero

  public static DeviceSlot read(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    DeviceSlot d = new DeviceSlot();
    b.get(p, d.tag);
    d.blocks = b.getInt(p + 64) & 0xFFFFFFFFL;
    d.uniaddr = b.getInt(p + 68) & 0xFFFFFFFFL;
    b.position(p + SIZE);
    return d;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.put(p, new byte[SIZE]);
    b.put(p, tag);
    b.putInt(p + 64, (int) blocks);
    b.putInt(p + 68, (int) uniaddr);
    b.position(p + SIZE);
  }

  /** The tag as text: bytes up to the first NUL. */
  public String tagString() {
    int n = 0;
    while (n < tag.length && tag[n] != 0) {
      n++;
    }
    return new String(tag, 0, n, java.nio.charset.StandardCharsets.ISO_8859_1);
  }
}
