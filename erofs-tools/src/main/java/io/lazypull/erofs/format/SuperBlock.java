package io.lazypull.erofs.format;

import java.nio.ByteBuffer;

/**
 * {@code struct erofs_super_block}, the 128-byte base form at byte 1024 of the primary device
 * (sb_extslots = 0). Fields are public like a C struct; only readers and writers of the format
 * touch them. Offsets are relative to the start of the superblock.
 */
public final class SuperBlock {
  public static final int SIZE = 128;

  public int magic;               // 0-3     E0F5E1E2
  public int checksum;            // 4-7     ~CRC32C of block 0 from byte 1024, see Erofs
  public int featureCompat;       // 8-11
  public int blkszbits;           // 12      u8, log2(B), 9..12 on x86-64
  public int sbExtslots;          // 13      u8, 0
  public int rootNid;             // 14-15   u16
  public long inos;               // 16-23   u64, inode count (statfs only)
  public long buildTime;          // 24-31   u64, seconds; base of compact inodes' mtime
  public int buildTimeNsec;       // 32-35   u32
  public long blocks;             // 36-39   u32, blocks of the primary device
  public long metaBlkaddr;        // 40-43   u32, NIDs count 32-byte slots from here
  public long xattrBlkaddr;       // 44-47   u32, shared xattr area
  public final byte[] uuid = new byte[16];       // 48-63
  public final byte[] volumeName = new byte[16]; // 64-79  must contain a NUL
  public int featureIncompat;     // 80-83
  public int u1;                  // 84-85   u16, compression only: 0
  public int extraDevices;        // 86-87   u16
  public int devtSlotoff;         // 88-89   u16, device table at devt_slotoff * 128
  public int dirblkbits;          // 90      u8, must be 0
  public int xattrPrefixCount;    // 91      u8
  public long xattrPrefixStart;   // 92-95   u32
  public long packedNid;          // 96-103  u64
  // 104-127 reserved (xattr filter, 48-bit fields): written as zero

  public static SuperBlock read(ByteBuffer b) {
    Erofs.le(b);
    SuperBlock s = new SuperBlock();
    int p = b.position();
    s.magic = b.getInt(p);
    s.checksum = b.getInt(p + 4);
    s.featureCompat = b.getInt(p + 8);
    s.blkszbits = b.get(p + 12) & 0xff;
    s.sbExtslots = b.get(p + 13) & 0xff;
    s.rootNid = b.getShort(p + 14) & 0xffff;
    s.inos = b.getLong(p + 16);
    s.buildTime = b.getLong(p + 24);
    s.buildTimeNsec = b.getInt(p + 32);
    s.blocks = b.getInt(p + 36) & 0xFFFFFFFFL;
    s.metaBlkaddr = b.getInt(p + 40) & 0xFFFFFFFFL;
    s.xattrBlkaddr = b.getInt(p + 44) & 0xFFFFFFFFL;
    b.get(p + 48, s.uuid);
    b.get(p + 64, s.volumeName);
    s.featureIncompat = b.getInt(p + 80);
    s.u1 = b.getShort(p + 84) & 0xffff;
    s.extraDevices = b.getShort(p + 86) & 0xffff;
    s.devtSlotoff = b.getShort(p + 88) & 0xffff;
    s.dirblkbits = b.get(p + 90) & 0xff;
    s.xattrPrefixCount = b.get(p + 91) & 0xff;
    s.xattrPrefixStart = b.getInt(p + 92) & 0xFFFFFFFFL;
    s.packedNid = b.getLong(p + 96);
    b.position(p + SIZE);
    return s;
  }

  public void write(ByteBuffer b) {
    Erofs.le(b);
    int p = b.position();
    b.put(p, new byte[SIZE]);
    b.putInt(p, magic);
    b.putInt(p + 4, checksum);
    b.putInt(p + 8, featureCompat);
    b.put(p + 12, (byte) blkszbits);
    b.put(p + 13, (byte) sbExtslots);
    b.putShort(p + 14, (short) rootNid);
    b.putLong(p + 16, inos);
    b.putLong(p + 24, buildTime);
    b.putInt(p + 32, buildTimeNsec);
    b.putInt(p + 36, (int) blocks);
    b.putInt(p + 40, (int) metaBlkaddr);
    b.putInt(p + 44, (int) xattrBlkaddr);
    b.put(p + 48, uuid);
    b.put(p + 64, volumeName);
    b.putInt(p + 80, featureIncompat);
    b.putShort(p + 84, (short) u1);
    b.putShort(p + 86, (short) extraDevices);
    b.putShort(p + 88, (short) devtSlotoff);
    b.put(p + 90, (byte) dirblkbits);
    b.put(p + 91, (byte) xattrPrefixCount);
    b.putInt(p + 92, (int) xattrPrefixStart);
    b.putLong(p + 96, packedNid);
    b.position(p + SIZE);
  }
}
