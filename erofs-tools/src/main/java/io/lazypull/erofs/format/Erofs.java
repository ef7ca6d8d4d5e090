package io.lazypull.erofs.format;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * Constants of the EROFS on-disk format (uncompressed subset), named as in the kernel's
 * {@code erofs_fs.h} so one grep finds both. See shared/spec/erofs-format.md.
 */
public final class Erofs {
  private Erofs() {}

  public static final int MAGIC = 0xE0F5E1E2;
  /** The superblock always starts here, whatever the block size. */
  public static final int SUPER_OFFSET = 1024;
  /** Inodes are aligned to 32-byte slots; a NID counts slots from meta_blkaddr. */
  public static final int ISLOT_SIZE = 32;
  public static final int NAME_LEN = 255;
  public static final long NULL_ADDR = 0xFFFFFFFFL;

  public static final int FEATURE_COMPAT_SB_CHKSUM = 0x01;
  public static final int FEATURE_COMPAT_MTIME = 0x02;
  public static final int FEATURE_COMPAT_XATTR_FILTER = 0x04;

  public static final int FEATURE_INCOMPAT_ZERO_PADDING = 0x01;
  public static final int FEATURE_INCOMPAT_COMPR_CFGS = 0x02;
  public static final int FEATURE_INCOMPAT_CHUNKED_FILE = 0x04;
  public static final int FEATURE_INCOMPAT_DEVICE_TABLE = 0x08;
  public static final int FEATURE_INCOMPAT_ZTAILPACKING = 0x10;
  public static final int FEATURE_INCOMPAT_FRAGMENTS = 0x20;
  public static final int FEATURE_INCOMPAT_XATTR_PREFIXES = 0x40;
  public static final int FEATURE_INCOMPAT_48BIT = 0x80;
  public static final int FEATURE_INCOMPAT_METABOX = 0x100;
  /** The incompat bits this implementation understands (uncompressed, 32-bit addresses). */
  public static final int FEATURE_INCOMPAT_SUPPORTED =
      FEATURE_INCOMPAT_CHUNKED_FILE | FEATURE_INCOMPAT_DEVICE_TABLE;

  // i_format: bit 0 version, bits 1..3 data layout.
  public static final int INODE_LAYOUT_COMPACT = 0;
  public static final int INODE_LAYOUT_EXTENDED = 1;
  public static final int DATALAYOUT_FLAT_PLAIN = 0;
  public static final int DATALAYOUT_COMPRESSED_FULL = 1;
  public static final int DATALAYOUT_FLAT_INLINE = 2;
  public static final int DATALAYOUT_COMPRESSED_COMPACT = 3;
  public static final int DATALAYOUT_CHUNK_BASED = 4;

  // chunk_info.format
  public static final int CHUNK_FORMAT_BLKBITS_MASK = 0x1F;
  public static final int CHUNK_FORMAT_INDEXES = 0x20;
  public static final int CHUNK_FORMAT_48BIT = 0x40;

  // dirent file_type (d_type)
  public static final int FT_UNKNOWN = 0;
  public static final int FT_REG_FILE = 1;
  public static final int FT_DIR = 2;
  public static final int FT_CHRDEV = 3;
  public static final int FT_BLKDEV = 4;
  public static final int FT_FIFO = 5;
  public static final int FT_SOCK = 6;
  public static final int FT_SYMLINK = 7;

  // POSIX mode bits
  public static final int S_IFMT = 0170000;
  public static final int S_IFSOCK = 0140000;
  public static final int S_IFLNK = 0120000;
  public static final int S_IFREG = 0100000;
  public static final int S_IFBLK = 0060000;
  public static final int S_IFDIR = 0040000;
  public static final int S_IFCHR = 0020000;
  public static final int S_IFIFO = 0010000;

  // xattr name index -> prefix (e_name_index); index 2 and 3 are whole names.
  public static final int XATTR_INDEX_USER = 1;
  public static final int XATTR_INDEX_POSIX_ACL_ACCESS = 2;
  public static final int XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
  public static final int XATTR_INDEX_TRUSTED = 4;
  public static final int XATTR_INDEX_LUSTRE = 5;
  public static final int XATTR_INDEX_SECURITY = 6;
  /** Prefix strings indexed by e_name_index; entry 0 is unused. */
  public static final String[] XATTR_PREFIXES = {
    null, "user.", "system.posix_acl_access", "system.posix_acl_default", "trusted.", "lustre.",
    "security.",
  };

  /** The d_type of a POSIX mode. */
  public static int fileType(int mode) {
    switch (mode & S_IFMT) {
      case S_IFREG: return FT_REG_FILE;
      case S_IFDIR: return FT_DIR;
      case S_IFCHR: return FT_CHRDEV;
      case S_IFBLK: return FT_BLKDEV;
      case S_IFIFO: return FT_FIFO;
      case S_IFSOCK: return FT_SOCK;
      case S_IFLNK: return FT_SYMLINK;
      default: return FT_UNKNOWN;
    }
  }

  /** True if the S_IFMT part of a mode is one the kernel accepts. */
  public static boolean isKnownType(int mode) {
    return fileType(mode) != FT_UNKNOWN;
  }

  /** Linux "new" dev_t encoding, as stored in i_u of char/block inodes. */
  public static int encodeRdev(int major, int minor) {
    return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
  }

  public static int rdevMajor(int rdev) {
    return (rdev & 0xfff00) >>> 8;
  }

  public static int rdevMinor(int rdev) {
    return (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  }

  /** A little-endian view, as every EROFS structure is little-endian. */
  public static ByteBuffer le(ByteBuffer b) {
    return b.order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * The superblock checksum: CRC32C with seed ~0 and no final XOR over bytes
   * [1024, 1024 + len) of block 0 with the checksum field zeroed, where len is B - 1024 (or B
   * when B <= 1024). {@code block0} holds the image from byte 0.
   */
  public static int superblockChecksum(ByteBuffer block0, int blockSize) {
    int len = blockSize > SUPER_OFFSET ? blockSize - SUPER_OFFSET : blockSize;
    byte[] range = new byte[len];
    block0.duplicate().position(SUPER_OFFSET).get(range);
    range[4] = range[5] = range[6] = range[7] = 0;
    CRC32C crc = new CRC32C();
    crc.update(range);
    // java.util.zip.CRC32C applies the final XOR; EROFS does not.
    return (int) ~crc.getValue();
  }

  public static long roundUp(long v, long unit) {
    return (v + unit - 1) / unit * unit;
  }
}
