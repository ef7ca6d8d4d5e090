package io.lazypull.erofs;

import io.lazypull.erofs.format.ChunkIndex;
import io.lazypull.erofs.format.DeviceSlot;
import io.lazypull.erofs.format.Dirent;
import io.lazypull.erofs.format.Erofs;
import io.lazypull.erofs.format.InodeCompact;
import io.lazypull.erofs.format.InodeExtended;
import io.lazypull.erofs.format.SuperBlock;
import io.lazypull.erofs.format.XattrEntry;
import io.lazypull.erofs.format.XattrIbodyHeader;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A reader of uncompressed EROFS images: superblock, device table, inodes, directories, file
 * data (FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED with block maps or chunk indexes, holes, extra
 * devices, unified addresses), symlinks and xattrs (inline and shared).
 *
 * <p>Every field read from the image is checked before it is used: a malformed image gives a
 * {@link CorruptImageException} naming what and where, never a loop (directory cycles and
 * depth are checked by {@link #walk}) and never a huge allocation (sizes are validated first).
 * An instance holds no mutable state: it may be shared between threads when its sources may
 * ({@link ImageSource#of(java.nio.file.Path)} and {@link ImageSource#of(byte[])} can).
 */
public final class ErofsImage implements Closeable {
  /** Deeper trees are refused by {@link #walk}: a path that deep exceeds PATH_MAX anyway. */
  public static final int MAX_DEPTH = 2048;
  /** Directories larger than this are refused (a 3000-entry directory takes about 100 KiB). */
  public static final long MAX_DIR_SIZE = 64L << 20;
  /** Symlink targets longer than PATH_MAX are refused. */
  public static final int MAX_SYMLINK = 4096;

  private final ImageSource primary;
  private final List<ImageSource> devices;
  private final SuperBlock sb;
  private final int blockSize;
  private final List<Device> deviceTable;
  private final int deviceIdMask;
  private final long primarySize;

  /** The superblock, decoded. */
  public record Info(int blockSize, long rootNid, long inodeCount, long buildTime,
      int buildTimeNsec, long blocks, long metaBlkaddr, long xattrBlkaddr, byte[] uuid,
      String volumeName, int featureCompat, int featureIncompat, int checksum) {
    /** Names of the feature bits that are set, e.g. [sb_csum, mtime, chunked_file]. */
    public List<String> featureNames() {
      List<String> names = new ArrayList<>();
      String[] compat = {"sb_csum", "mtime", "xattr_filter"};
      String[] incompat = {"zero_padding", "compr_cfgs", "chunked_file", "device_table",
          "ztailpacking", "fragments", "xattr_prefixes", "48bit", "metabox"};
      for (int i = 0; i < 32; i++) {
        if ((featureCompat & (1 << i)) != 0) {
          names.add(i < compat.length ? compat[i] : "compat_0x" + Integer.toHexString(1 << i));
        }
      }
      for (int i = 0; i < 32; i++) {
        if ((featureIncompat & (1 << i)) != 0) {
          names.add(i < incompat.length ? incompat[i] : "incompat_0x" + Integer.toHexString(1 << i));
        }
      }
      return names;
    }
  }

  /** One slot of the device table; {@code id} is the device id chunk indexes use (1-based). */
  public record Device(int id, String tag, long blocks, long uniaddr) {}

  /** An inode's attributes, like stat(2). {@code rawU} is the i_u union as stored. */
  public record Node(long nid, int mode, long uid, long gid, long size, long mtime,
      int mtimeNsec, long nlink, int datalayout, boolean extended, int xattrIcount, int rawU) {
    public boolean isDirectory() {
      return (mode & Erofs.S_IFMT) == Erofs.S_IFDIR;
    }

    public boolean isRegular() {
      return (mode & Erofs.S_IFMT) == Erofs.S_IFREG;
    }

    public boolean isSymlink() {
      return (mode & Erofs.S_IFMT) == Erofs.S_IFLNK;
    }

    public boolean isDevice() {
      int t = mode & Erofs.S_IFMT;
      return t == Erofs.S_IFCHR || t == Erofs.S_IFBLK;
    }

    public int rdevMajor() {
      return isDevice() ? Erofs.rdevMajor(rawU) : 0;
    }

    public int rdevMinor() {
      return isDevice() ? Erofs.rdevMinor(rawU) : 0;
    }

    public Instant mtimeInstant() {
      return Instant.ofEpochSecond(mtime, mtimeNsec);
    }
  }

  /** A directory entry: raw name bytes, target NID, d_type. */
  public record DirEntry(byte[] name, long nid, int fileType) {
    public String nameString() {
      return new String(name, StandardCharsets.UTF_8);
    }

    public boolean isDotOrDotDot() {
      return Arrays.equals(name, DOT) || Arrays.equals(name, DOTDOT);
    }
  }

  /** Receives each entry of {@link #walk}: the path ("/" for the root, "/a/b" below). */
  @FunctionalInterface
  public interface Visitor {
    void visit(String path, Node node) throws IOException;
  }

  private static final byte[] ZEROS = new byte[64 * 1024];
  private static final byte[] DOT = {'.'};
  private static final byte[] DOTDOT = {'.', '.'};

  private ErofsImage(ImageSource primary, List<ImageSource> devices) throws IOException {
    this.primary = primary;
    this.devices = List.copyOf(devices);
    this.primarySize = primary.size();
    if (primarySize < Erofs.SUPER_OFFSET + SuperBlock.SIZE) {
      throw new CorruptImageException("superblock: image of " + primarySize
          + " bytes is too small to hold one");
    }
    sb = SuperBlock.read(bytes(Erofs.SUPER_OFFSET, SuperBlock.SIZE, "superblock"));
    if (sb.magic != Erofs.MAGIC) {
      throw new CorruptImageException(String.format("superblock: bad magic 0x%08x (expected 0x%08x)",
          sb.magic, Erofs.MAGIC));
    }
    if (sb.blkszbits < 9 || sb.blkszbits > 16) {
      throw new CorruptImageException("superblock: unsupported block size bits " + sb.blkszbits);
    }
    blockSize = 1 << sb.blkszbits;
    if ((sb.featureCompat & Erofs.FEATURE_COMPAT_SB_CHKSUM) != 0) {
      int len = Math.max(blockSize, Erofs.SUPER_OFFSET + (blockSize > Erofs.SUPER_OFFSET ? 0 : blockSize));
      if (primarySize < len) {
        throw new CorruptImageException("superblock: image of " + primarySize
            + " bytes ends inside the checksummed block");
      }
      int expected = Erofs.superblockChecksum(bytes(0, len, "superblock block"), blockSize);
      if (expected != sb.checksum) {
        throw new CorruptImageException(String.format(
            "superblock: bad checksum 0x%08x (computed 0x%08x)", sb.checksum, expected));
      }
    }
    int unknown = sb.featureIncompat & ~Erofs.FEATURE_INCOMPAT_SUPPORTED;
    if (unknown != 0) {
      throw new CorruptImageException(String.format(
          "superblock: unsupported incompatible features 0x%x (compression, 48-bit and long xattr"
              + " prefixes are not implemented)", unknown));
    }
    if (sb.dirblkbits != 0) {
      throw new CorruptImageException("superblock: dirblkbits " + sb.dirblkbits + " is not supported");
    }
    if (sb.blocks * blockSize > primarySize) {
      throw new CorruptImageException("superblock: says " + sb.blocks + " blocks ("
          + sb.blocks * blockSize + " bytes) but the image has " + primarySize + " bytes (truncated?)");
    }
    if (sb.metaBlkaddr >= Math.max(sb.blocks, 1) && sb.blocks > 0) {
      throw new CorruptImageException("superblock: meta_blkaddr " + sb.metaBlkaddr
          + " beyond the image's " + sb.blocks + " blocks");
    }
    List<Device> table = new ArrayList<>();
    if ((sb.featureIncompat & Erofs.FEATURE_INCOMPAT_DEVICE_TABLE) != 0) {
      long at = (long) sb.devtSlotoff * DeviceSlot.SIZE;
      if (sb.extraDevices > 0 && at < Erofs.SUPER_OFFSET + SuperBlock.SIZE) {
        throw new CorruptImageException("superblock: device table at byte " + at
            + " overlaps the superblock");
      }
      for (int i = 0; i < sb.extraDevices; i++) {
        DeviceSlot slot = DeviceSlot.read(bytes(at + (long) i * DeviceSlot.SIZE, DeviceSlot.SIZE,
            "device table slot " + i));
        table.add(new Device(i + 1, slot.tagString(), slot.blocks, slot.uniaddr));
      }
    }
    deviceTable = List.copyOf(table);
    // The kernel masks device ids with roundup_pow_of_two(extra_devices + 1) - 1.
    int ids = deviceTable.size() + 1;
    int pow2 = Integer.highestOneBit(ids) == ids ? ids : Integer.highestOneBit(ids) << 1;
    deviceIdMask = pow2 - 1;
    if (!this.devices.isEmpty() && this.devices.size() != deviceTable.size()) {
      throw new IOException("extra devices don't match: the image has " + deviceTable.size()
          + ", " + this.devices.size() + " given");
    }
    Node root = node(sb.rootNid);
    if (!root.isDirectory()) {
      throw new CorruptImageException("superblock: root nid " + sb.rootNid + " is not a directory");
    }
  }

  /**
   * Opens an image. {@code devices} are the extra devices in device-table order: none (then
   * only metadata can be read, unless the data is appended to the primary, "flat" mode) or
   * exactly as many as the table has. The sources stay owned by the caller.
   *
   * @throws CorruptImageException if the superblock, device table or root inode is malformed
   */
  public static ErofsImage open(ImageSource primary, List<ImageSource> devices) throws IOException {
    return new ErofsImage(primary, devices);
  }

  public Info info() {
    return new Info(blockSize, sb.rootNid, sb.inos, sb.buildTime, sb.buildTimeNsec, sb.blocks,
        sb.metaBlkaddr, sb.xattrBlkaddr, sb.uuid.clone(), cString(sb.volumeName),
        sb.featureCompat, sb.featureIncompat, sb.checksum);
  }

  /** The device table (empty without INCOMPAT_DEVICE_TABLE). */
  public List<Device> devices() {
    return deviceTable;
  }

  /** Bytes of the EROFS image proper: blocks * block size (a trailer may follow). */
  public long erofsBytes() {
    return sb.blocks * blockSize;
  }

  /** True if file data on extra devices can be read (devices given, or appended flat). */
  public boolean hasDeviceData() {
    if (deviceTable.isEmpty() || !devices.isEmpty()) {
      return true;
    }
    for (Device d : deviceTable) {
      if (!isFlat(d)) {
        return false;
      }
    }
    return true;
  }

  public Node root() throws IOException {
    return node(sb.rootNid);
  }

  /** Reads and checks the inode with this NID. */
  public Node node(long nid) throws IOException {
    if (nid < 0 || nid > (Long.MAX_VALUE >> 6)) {
      throw new CorruptImageException("nid " + nid + " is out of range");
    }
    long pos = inodePos(nid);
    ByteBuffer head = bytes(pos, InodeCompact.SIZE, "nid " + nid + ": inode");
    int format = head.getShort(0) & 0xffff;
    if ((format & ~0xF) != 0) {
      throw new CorruptImageException(String.format("nid %d: unsupported i_format 0x%x", nid, format));
    }
    int layout = (format >> 1) & 7;
    if (layout != Erofs.DATALAYOUT_FLAT_PLAIN && layout != Erofs.DATALAYOUT_FLAT_INLINE
        && layout != Erofs.DATALAYOUT_CHUNK_BASED) {
      throw new CorruptImageException("nid " + nid + ": unsupported data layout " + layout
          + (layout == 1 || layout == 3 ? " (compressed)" : ""));
    }
    Node node;
    if ((format & 1) == Erofs.INODE_LAYOUT_EXTENDED) {
      InodeExtended i = InodeExtended.read(bytes(pos, InodeExtended.SIZE, "nid " + nid + ": extended inode"));
      if (i.size < 0) {
        throw new CorruptImageException("nid " + nid + ": negative size " + i.size);
      }
      node = new Node(nid, i.mode, i.uid, i.gid, i.size, i.mtime, i.mtimeNsec, i.nlink, layout,
          true, i.xattrIcount, i.u);
    } else {
      InodeCompact i = InodeCompact.read(head);
      node = new Node(nid, i.mode, i.uid, i.gid, i.size, sb.buildTime, sb.buildTimeNsec, i.nlink,
          layout, false, i.xattrIcount, i.u);
    }
    if (!Erofs.isKnownType(node.mode())) {
      throw new CorruptImageException(String.format("nid %d: bogus i_mode 0%o", nid, node.mode()));
    }
    if (node.xattrIcount() == 1) {
      throw new CorruptImageException("nid " + nid + ": xattr_icount 1 (a bare xattr header) is invalid");
    }
    if (node.mtimeNsec() < 0 || node.mtimeNsec() > 999_999_999) {
      throw new CorruptImageException("nid " + nid + ": mtime nanoseconds " + node.mtimeNsec() + " out of range");
    }
    if (node.isDirectory() && node.size() > MAX_DIR_SIZE) {
      throw new CorruptImageException("nid " + nid + ": directory size " + node.size() + " exceeds "
          + MAX_DIR_SIZE);
    }
    if (node.isSymlink() && (node.size() == 0 || node.size() > MAX_SYMLINK)) {
      throw new CorruptImageException("nid " + nid + ": symlink size " + node.size() + " out of range");
    }
    if (layout == Erofs.DATALAYOUT_CHUNK_BASED) {
      int cf = node.rawU() & 0xffff;
      if ((cf & ~(Erofs.CHUNK_FORMAT_BLKBITS_MASK | Erofs.CHUNK_FORMAT_INDEXES)) != 0) {
        throw new CorruptImageException(String.format("nid %d: unsupported chunk format 0x%x", nid, cf));
      }
    }
    return node;
  }

  private long inodePos(long nid) {
    return sb.metaBlkaddr * blockSize + nid * Erofs.ISLOT_SIZE;
  }

  private int inodeSize(Node n) {
    return n.extended() ? InodeExtended.SIZE : InodeCompact.SIZE;
  }

  /** Where the xattr body ends and the tail or chunk indexes begin. */
  private long afterXattrs(Node n) {
    return inodePos(n.nid()) + inodeSize(n) + XattrIbodyHeader.ibodySize(n.xattrIcount());
  }

  // ---- data ----

  /**
   * Reads file (or directory, symlink) data at {@code pos} into {@code dst}; returns the byte
   * count, or -1 at or past EOF. Holes read as zeros.
   */
  public int read(Node node, long pos, ByteBuffer dst) throws IOException {
    if (pos >= node.size()) {
      return -1;
    }
    int want = (int) Math.min(dst.remaining(), node.size() - pos);
    int done = 0;
    while (done < want) {
      int n = readMapped(node, pos + done, dst, want - done);
      done += n;
    }
    return done;
  }

  /** Reads at most {@code max} bytes at {@code pos}, all within one mapped extent. */
  private int readMapped(Node n, long pos, ByteBuffer dst, int max) throws IOException {
    switch (n.datalayout()) {
      case Erofs.DATALAYOUT_FLAT_PLAIN:
      case Erofs.DATALAYOUT_FLAT_INLINE: {
        long blocks = (n.size() + blockSize - 1) / blockSize;
        boolean inline = n.datalayout() == Erofs.DATALAYOUT_FLAT_INLINE;
        long bodyLen = inline ? (blocks - 1) * blockSize : n.size();
        if (pos >= bodyLen) {
          long tailPos = afterXattrs(n);
          int tailLen = (int) (n.size() - bodyLen);
          if ((tailPos % blockSize) + tailLen > blockSize) {
            throw new CorruptImageException("nid " + n.nid() + ": inline data of " + tailLen
                + " bytes at byte " + tailPos + " crosses a block boundary");
          }
          int len = (int) Math.min(max, n.size() - pos);
          readPrimary(tailPos + (pos - bodyLen), dst, len, "nid " + n.nid() + ": inline data");
          return len;
        }
        long startBlk = n.rawU() & 0xFFFFFFFFL;
        long bodyBlocks = (bodyLen + blockSize - 1) / blockSize;
        if (startBlk + bodyBlocks > sb.blocks) {
          throw new CorruptImageException("nid " + n.nid() + ": data blocks " + startBlk + ".."
              + (startBlk + bodyBlocks - 1) + " beyond the image's " + sb.blocks + " blocks");
        }
        int len = (int) Math.min(max, bodyLen - pos);
        readPrimary(startBlk * blockSize + pos, dst, len, "nid " + n.nid() + ": data");
        return len;
      }
      case Erofs.DATALAYOUT_CHUNK_BASED:
        return readChunk(n, pos, dst, max);
      default:
        throw new CorruptImageException("nid " + n.nid() + ": data layout " + n.datalayout());
    }
  }

  private int readChunk(Node n, long pos, ByteBuffer dst, int max) throws IOException {
    int cf = n.rawU() & 0xffff;
    int chunkBits = sb.blkszbits + (cf & Erofs.CHUNK_FORMAT_BLKBITS_MASK);
    if (chunkBits > 47) {
      throw new CorruptImageException("nid " + n.nid() + ": chunk size 2^" + chunkBits + " too large");
    }
    boolean indexes = (cf & Erofs.CHUNK_FORMAT_INDEXES) != 0;
    int unit = indexes ? ChunkIndex.SIZE : ChunkIndex.BLOCK_MAP_ENTRY_SIZE;
    long k = pos >>> chunkBits;
    long entryPos = Erofs.roundUp(afterXattrs(n), unit) + k * unit;
    String where = "nid " + n.nid() + ": chunk " + k;
    ByteBuffer e = bytes(entryPos, unit, where + " index");
    int deviceId;
    long blk;
    if (indexes) {
      ChunkIndex ci = ChunkIndex.read(e);
      deviceId = ci.deviceId & deviceIdMask;
      blk = ci.startblkLo;
      if (ci.startblkHi != 0) {
        throw new CorruptImageException(where + ": 48-bit block address");
      }
    } else {
      deviceId = 0;
      blk = e.getInt(0) & 0xFFFFFFFFL;
    }
    long chunkStart = k << chunkBits;
    int len = (int) Math.min(max, Math.min(n.size(), chunkStart + (1L << chunkBits)) - pos);
    if (blk == Erofs.NULL_ADDR) {
      for (int left = len; left > 0; ) {
        int part = Math.min(left, ZEROS.length);
        dst.put(ZEROS, 0, part);
        left -= part;
      }
      return len;
    }
    long addr = blk * blockSize + (pos - chunkStart);
    if (deviceId > deviceTable.size()) {
      throw new CorruptImageException(where + ": device id " + deviceId + " but the image has "
          + deviceTable.size() + " extra devices");
    }
    if (deviceId == 0) {
      // Unified address space: a device-0 address inside a device's window is on that device.
      for (Device d : deviceTable) {
        long lo = d.uniaddr() * blockSize;
        if (d.uniaddr() != 0 && addr >= lo && addr < lo + d.blocks() * blockSize && !devices.isEmpty()) {
          readDevice(d, addr - lo, dst, len, where);
          return len;
        }
      }
      readPrimary(addr, dst, len, where);
      return len;
    }
    readDevice(deviceTable.get(deviceId - 1), addr, dst, len, where);
    return len;
  }

  private boolean isFlat(Device d) {
    return d.uniaddr() != 0 && (d.uniaddr() + d.blocks()) * blockSize <= primarySize;
  }

  private void readDevice(Device d, long addr, ByteBuffer dst, int len, String where) throws IOException {
    if (devices.isEmpty()) {
      if (!isFlat(d)) {
        throw new IOException(where + ": data is on device " + d.id() + " ('" + d.tag()
            + "'), which was not given");
      }
      readPrimary(d.uniaddr() * blockSize + addr, dst, len, where);
      return;
    }
    ImageSource src = devices.get(d.id() - 1);
    long size = src.size();
    if (addr < 0 || addr + len > size) {
      throw new CorruptImageException(where + ": bytes " + addr + ".." + (addr + len)
          + " beyond the end of device " + d.id() + " (" + size + " bytes)");
    }
    readSource(src, addr, dst, len, where);
  }

  private void readPrimary(long addr, ByteBuffer dst, int len, String where) throws IOException {
    if (addr < 0 || addr + len > primarySize) {
      throw new CorruptImageException(where + ": bytes " + addr + ".." + (addr + len)
          + " beyond the end of the image (" + primarySize + " bytes)");
    }
    readSource(primary, addr, dst, len, where);
  }

  private static void readSource(ImageSource src, long addr, ByteBuffer dst, int len, String where)
      throws IOException {
    ByteBuffer window = dst.duplicate();
    window.limit(window.position() + len);
    try {
      src.read(addr, window);
    } catch (EOFException e) {
      throw new CorruptImageException(where + ": " + e.getMessage());
    }
    dst.position(dst.position() + len);
  }

  /** Bounds-checked read of metadata from the primary device, little-endian. */
  private ByteBuffer bytes(long pos, int len, String what) throws IOException {
    if (pos < 0 || pos + len > primarySize) {
      throw new CorruptImageException(what + ": bytes " + pos + ".." + (pos + len)
          + " beyond the end of the image (" + primarySize + " bytes)");
    }
    ByteBuffer b = Erofs.le(ByteBuffer.allocate(len));
    try {
      primary.read(pos, b);
    } catch (EOFException e) {
      throw new CorruptImageException(what + ": " + e.getMessage());
    }
    return b.flip();
  }

  /** A stream of a file's content. */
  public InputStream openStream(Node node) {
    return new InputStream() {
      long pos;

      @Override
      public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
      }

      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) {
          return 0;
        }
        int n = ErofsImage.this.read(node, pos, ByteBuffer.wrap(b, off, len));
        if (n > 0) {
          pos += n;
        }
        return n;
      }
    };
  }

  /** A symlink's target bytes. */
  public byte[] readlink(Node node) throws IOException {
    if (!node.isSymlink()) {
      throw new IllegalArgumentException("nid " + node.nid() + " is not a symlink");
    }
    ByteBuffer b = ByteBuffer.allocate((int) node.size());
    read(node, 0, b);
    return b.array();
  }

  // ---- directories ----

  /** All entries of a directory in on-disk order, "." and ".." included, checked. */
  public List<DirEntry> readdir(Node dir) throws IOException {
    if (!dir.isDirectory()) {
      throw new IllegalArgumentException("nid " + dir.nid() + " is not a directory");
    }
    List<DirEntry> out = new ArrayList<>();
    ByteBuffer block = Erofs.le(ByteBuffer.allocate(blockSize));
    byte[] previous = null;
    for (long start = 0, lblk = 0; start < dir.size(); start += blockSize, lblk++) {
      int valid = (int) Math.min(blockSize, dir.size() - start);
      block.clear().limit(valid);
      read(dir, start, block);
      block.flip();
      String where = "nid " + dir.nid() + " lblk " + lblk;
      if (valid < Dirent.SIZE) {
        throw new CorruptImageException(where + ": directory block of " + valid + " bytes");
      }
      int nameoff0 = block.getShort(8) & 0xffff;
      if (nameoff0 < Dirent.SIZE || nameoff0 >= valid || nameoff0 % Dirent.SIZE != 0) {
        throw new CorruptImageException(where + ": bogus dirent nameoff " + nameoff0
            + " (block valid size " + valid + ")");
      }
      int count = nameoff0 / Dirent.SIZE;
      for (int i = 1, prev = nameoff0; i < count; i++) {
        int off = block.getShort(i * Dirent.SIZE + 8) & 0xffff;
        if (off >= valid) {
          throw new CorruptImageException(where + ": dirent " + i + " nameoff " + off
              + " beyond the directory block of " + valid + " bytes");
        }
        if (off <= prev) {
          throw new CorruptImageException(where + ": dirent " + i + " nameoff " + off
              + " is not after the previous name at " + prev);
        }
        prev = off;
      }
      for (int i = 0; i < count; i++) {
        block.position(i * Dirent.SIZE);
        Dirent d = Dirent.read(block);
        int end;
        if (i + 1 < count) {
          end = block.getShort((i + 1) * Dirent.SIZE + 8) & 0xffff;
        } else {
          end = valid;
          for (int j = d.nameoff; j < valid; j++) {
            if (block.get(j) == 0) {
              end = j;
              break;
            }
          }
        }
        if (d.nameoff < nameoff0 || d.nameoff >= valid || end > valid || end <= d.nameoff) {
          throw new CorruptImageException(where + ": dirent " + i + " nameoff " + d.nameoff
              + " (name end " + end + ") beyond the directory block of " + valid + " bytes");
        }
        if (end - d.nameoff > Erofs.NAME_LEN) {
          throw new CorruptImageException(where + ": dirent " + i + " name of " + (end - d.nameoff)
              + " bytes is too long");
        }
        byte[] name = new byte[end - d.nameoff];
        block.get(d.nameoff, name);
        for (byte c : name) {
          if (c == '/' || c == 0) {
            throw new CorruptImageException(where + ": dirent " + i + " name contains '/' or NUL");
          }
        }
        if (previous != null && Arrays.compareUnsigned(previous, name) >= 0) {
          throw new CorruptImageException(where + ": dirent " + i + " '" + printable(name)
              + "' is not after '" + printable(previous) + "' (wrong dirent order)");
        }
        previous = name;
        out.add(new DirEntry(name, d.nid, d.fileType));
      }
    }
    return out;
  }

  /** The entries of a directory other than "." and "..". */
  public List<DirEntry> children(Node dir) throws IOException {
    List<DirEntry> all = readdir(dir);
    all.removeIf(DirEntry::isDotOrDotDot);
    return all;
  }

  /** The node at a path ("/" or "" = root, "a/b" or "/a/b"); symlinks are not followed. */
  public Optional<Node> lookup(String path) throws IOException {
    Node cur = root();
    for (String part : path.split("/")) {
      if (part.isEmpty()) {
        continue;
      }
      if (!cur.isDirectory()) {
        return Optional.empty();
      }
      byte[] want = part.getBytes(StandardCharsets.UTF_8);
      DirEntry hit = null;
      for (DirEntry e : readdir(cur)) {
        if (Arrays.equals(e.name(), want)) {
          hit = e;
          break;
        }
      }
      if (hit == null) {
        return Optional.empty();
      }
      cur = node(hit.nid());
    }
    return Optional.of(cur);
  }

  /**
   * Visits every entry depth-first in directory order, the root first. A directory reached
   * twice (a cycle or a hard-linked directory) or a tree deeper than {@link #MAX_DEPTH} is
   * corrupt; so is a dirent whose d_type disagrees with the inode.
   */
  public void walk(Visitor visitor) throws IOException {
    Node root = root();
    visitor.visit("/", root);
    Set<Long> seenDirs = new HashSet<>();
    seenDirs.add(root.nid());
    ArrayDeque<PendingDir> stack = new ArrayDeque<>();
    stack.push(new PendingDir("", root, 0));
    while (!stack.isEmpty()) {
      PendingDir top = stack.pop();
      String path = top.path();
      Node dir = top.dir();
      int depth = top.depth();
      if (depth >= MAX_DEPTH) {
        throw new CorruptImageException("nid " + dir.nid() + ": directory depth exceeds " + MAX_DEPTH);
      }
      List<PendingDir> subdirs = new ArrayList<>();
      for (DirEntry e : readdir(dir)) {
        if (e.isDotOrDotDot()) {
          if (e.name().length == 1 && e.nid() != dir.nid()) {
            throw new CorruptImageException("nid " + dir.nid() + ": '.' points to nid " + e.nid());
          }
          continue;
        }
        Node child = node(e.nid());
        if (e.fileType() != Erofs.fileType(child.mode()) && e.fileType() != Erofs.FT_UNKNOWN) {
          throw new CorruptImageException("nid " + dir.nid() + ": dirent '" + printable(e.name())
              + "' has file type " + e.fileType() + " but nid " + child.nid() + " is type "
              + Erofs.fileType(child.mode()));
        }
        String childPath = path + "/" + e.nameString();
        visitor.visit(childPath, child);
        if (child.isDirectory()) {
          if (!seenDirs.add(child.nid())) {
            throw new CorruptImageException("nid " + dir.nid() + ": directory cycle: '"
                + childPath + "' is nid " + child.nid() + ", already visited");
          }
          subdirs.add(new PendingDir(childPath, child, depth + 1));
        }
      }
      for (int i = subdirs.size() - 1; i >= 0; i--) {
        stack.push(subdirs.get(i));
      }
    }
  }

  /** A directory {@link #walk} has yet to list. */
  private record PendingDir(String path, Node dir, int depth) {}

  // ---- xattrs ----

  /** An inode's xattrs by full name, shared ones first, then inline, in on-disk order. */
  public Map<String, byte[]> xattrs(Node node) throws IOException {
    Map<String, byte[]> out = new LinkedHashMap<>();
    if (node.xattrIcount() == 0) {
      return out;
    }
    int bodySize = XattrIbodyHeader.ibodySize(node.xattrIcount());
    long base = inodePos(node.nid()) + inodeSize(node);
    String where = "nid " + node.nid() + ": xattrs";
    ByteBuffer body = bytes(base, bodySize, where);
    XattrIbodyHeader h = XattrIbodyHeader.read(body);
    int off = XattrIbodyHeader.SIZE + 4 * h.sharedCount;
    if (off > bodySize) {
      throw new CorruptImageException(where + ": " + h.sharedCount + " shared ids do not fit in "
          + bodySize + " bytes");
    }
    for (int i = 0; i < h.sharedCount; i++) {
      long id = body.getInt(XattrIbodyHeader.SIZE + 4 * i) & 0xFFFFFFFFL;
      long pos = sb.xattrBlkaddr * blockSize + 4 * id;
      ByteBuffer head = bytes(pos, XattrEntry.HEAD_SIZE, where + " shared id " + id);
      XattrEntry e = XattrEntry.readHead(head);
      ByteBuffer entry = bytes(pos, e.size(), where + " shared id " + id);
      putXattr(out, e, entry, XattrEntry.HEAD_SIZE, where + " shared id " + id);
    }
    while (off < bodySize) {
      if (bodySize - off < XattrEntry.HEAD_SIZE) {
        throw new CorruptImageException(where + ": entry head at " + off + " crosses the body end " + bodySize);
      }
      body.position(off);
      XattrEntry e = XattrEntry.readHead(body);
      if (off + e.size() > bodySize) {
        throw new CorruptImageException(where + ": entry at " + off + " of " + e.size()
            + " bytes crosses the body end " + bodySize);
      }
      putXattr(out, e, body, off + XattrEntry.HEAD_SIZE, where + " entry at " + off);
      off += e.size();
    }
    return out;
  }

  private static void putXattr(Map<String, byte[]> out, XattrEntry e, ByteBuffer b, int nameAt,
      String where) throws CorruptImageException {
    if (e.nameIndex < 1 || e.nameIndex >= Erofs.XATTR_PREFIXES.length) {
      throw new CorruptImageException(where + ": unknown xattr name index " + e.nameIndex);
    }
    byte[] suffix = new byte[e.nameLen];
    b.get(nameAt, suffix);
    byte[] value = new byte[e.valueSize];
    b.get(nameAt + e.nameLen, value);
    out.put(Erofs.XATTR_PREFIXES[e.nameIndex] + new String(suffix, StandardCharsets.UTF_8), value);
  }

  private static String cString(byte[] b) {
    int n = 0;
    while (n < b.length && b[n] != 0) {
      n++;
    }
    return new String(b, 0, n, StandardCharsets.UTF_8);
  }

  private static String printable(byte[] name) {
    String s = new String(name, StandardCharsets.UTF_8);
    return s.length() > 40 ? s.substring(0, 40) + "..." : s;
  }

  /** Does not close the sources: they belong to the caller. */
  @Override
  public void close() {}
}
