package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_xattr_entry}: a 4-byte head, then the name suffix and the value, padded to
 * a multiple of 4. The same form is used inline and in the shared area.
 */
public final class XattrEntry {
  public static final int HEAD_SIZE = 4;

  public int nameLen;    // 0     u8, length of the suffix after the prefix
  public int nameIndex;  // 1     u8, prefix id (Erofs.XATTR_PREFIXES); bit 7 = long prefix
  public int valueSize;  // 2-3   u16
  public byte[] name;    // 4-    nameLen bytes
  public byte[] value;   //       valueSize bytes, then padding to 4

  /** On-disk size including padding. */
  public static int entrySize(int nameLen, int valueSize) {
    return (HEAD_SIZE + nameLen + valueSize + 3) & ~3;
  }

  public int size() {
    return entrySize(nameLen, valueSize);
  }

  /** Reads the head only; the caller checks bounds before reading name and value. */
  public static XattrEntry readHead(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    XattrEntry e = new XattrEntry();
    e.nameLen = b.get(p) & 0xff;
    e.nameIndex = b.get(p + 1) & 0xff;
    e.valueSize = b.getShort(p + 2) & 0xffff;
    b.position(p + HEAD_SIZE);
    return e;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    int size = size();
    b.put(p, new byte[size]);
    b.put(p, (byte) nameLen);
    b.put(p + 1, (byte) nameIndex);
    b.putShort(p + 2, (short) valueSize);
    b.put(p + 4, name, 0, nameLen);
    b.put(p + 4 + nameLen, value, 0, valueSize);
    b.position(p + size);
  }
}
