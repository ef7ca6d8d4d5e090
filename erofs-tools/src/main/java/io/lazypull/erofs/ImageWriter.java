package io.lazypull.erofs;

import io.lazypull.erofs.format.ChunkIndex;
import io.lazypull.erofs.format.DeviceSlot;
import io.lazypull.erofs.format.Erofs;
import io.lazypull.erofs.format.InodeCompact;
import io.lazypull.erofs.format.InodeExtended;
import io.lazypull.erofs.format.SuperBlock;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/*
 * How an image is laid out (shared/spec/erofs-format.md §10):
 *
 *   block 0: [1024 zero bytes][superblock 128][device slots 128 each][inodes ...
 *   ... inodes, each followed by its xattr body and either its inline tail or its chunk
 *       indexes, 32-byte aligned, in breadth-first order so the root gets the smallest NID]
 *   [data blocks: directory blocks, symlink targets and file contents that are not inline,
 *    in the same order]
 *
 * meta_blkaddr is 0, so NID = byte position / 32. Sizes that do not depend on NIDs
 * (directory sizes, xattr bodies, compact/extended) are computed first, then NIDs are
 * assigned, then directories are encoded with the NIDs and everything is serialized. The
 * superblock checksum covers block 0 from byte 1024 and is computed last.
 */

/** Places and serializes the metadata of an image; file data is streamed by the caller. */
final class ImageWriter {
  static final int DEVT_SLOTOFF = (Erofs.SUPER_OFFSET + SuperBlock.SIZE) / DeviceSlot.SIZE;

  private final int blkszbits;
  private final int blockSize;
  private final long buildTime;
  private final int buildTimeNsec;
  final List<InodePlan> plans;
  private final Map<TreeInode, InodePlan> planOf = new IdentityHashMap<>();
  private DeviceSlot device;
  private long metaEnd;
  private long totalBlocks;
  private ByteBuffer meta;

  /** Orders the tree breadth-first and counts links. */
  ImageWriter(TreeInode root, int blkszbits, long buildTime, int buildTimeNsec) {
    this.blkszbits = blkszbits;
    this.blockSize = 1 << blkszbits;
    this.buildTime = buildTime;
    this.buildTimeNsec = buildTimeNsec;
    this.plans = new ArrayList<>();
    ArrayDeque<TreeInode> queue = new ArrayDeque<>();
    InodePlan rootPlan = addPlan(root);
    rootPlan.nlink = 2;
    queue.add(root);
    while (!queue.isEmpty()) {
      TreeInode dir = queue.poll();
      InodePlan dirPlan = planOf.get(dir);
      for (TreeInode child : dir.children.values()) {
        InodePlan p = planOf.get(child);
        if (p == null) {
          p = addPlan(child);
          if (child.isDirectory()) {
            p.nlink = 2;
            queue.add(child);
          }
        }
        if (child.isDirectory()) {
          dirPlan.nlink++;
        } else {
          p.nlink++;
        }
      }
    }
  }

  /**
   * The plans of the tree in depth-first pre-order, children by name, each inode once (hard
   * links at their first path): the order in which tar, cp -r or find read a tree, and so the
   * order in which data blobs lay out file contents, so that such a walk reads the blob
   * front to back.
   */
  List<InodePlan> depthFirst() {
    List<InodePlan> out = new ArrayList<>(plans.size());
    java.util.Set<TreeInode> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    ArrayDeque<TreeInode> stack = new ArrayDeque<>();
    stack.push(plans.get(0).inode);
    while (!stack.isEmpty()) {
      TreeInode n = stack.pop();
      if (!seen.add(n)) {
        continue;
      }
      out.add(planOf.get(n));
      if (n.isDirectory()) {
        List<TreeInode> children = new ArrayList<>(n.children.values());
        for (int i = children.size() - 1; i >= 0; i--) {
          stack.push(children.get(i));
        }
      }
    }
    return out;
  }

  private InodePlan addPlan(TreeInode inode) {
    InodePlan p = new InodePlan(inode, plans.size() + 1);
    plans.add(p);
    planOf.put(inode, p);
    return p;
  }

  int blockSize() {
    return blockSize;
  }

  /** Declares the one extra device (the data blob) that chunk indexes point into. */
  void setDevice(String tag, long blobBytes) {
    device = new DeviceSlot();
    byte[] t = tag.getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(t, 0, device.tag, 0, Math.min(t.length, DeviceSlot.TAG_SIZE));
    device.blocks = Erofs.roundUp(blobBytes, blockSize) / blockSize;
  }

  /** Assigns NIDs, layouts and data blocks. */
  void place() throws IOException {
    for (InodePlan p : plans) {
      TreeInode n = p.inode;
      p.xattrBody = Xattrs.encodeIbody(n.xattrs, n.origin);
      if (n.isDirectory()) {
        List<byte[]> names = new ArrayList<>(n.children.keySet());
        names.add(new byte[] {'.'});
        names.add(new byte[] {'.', '.'});
        names.sort(TreeInode.NAME_ORDER);
        p.size = DirBlocks.size(names, blockSize);
      } else {
        p.size = n.size;
      }
      p.extended = p.inode.uid > 0xFFFF || p.inode.gid > 0xFFFF || p.nlink > 0xFFFF
          || p.size > 0xFFFFFFFFL || n.mtime != buildTime || n.mtimeNsec != buildTimeNsec;
      if (p.nlink > 0xFFFFFFFFL) {
        throw new IOException(n.origin + ": too many links");
      }
    }
    long pos = Erofs.roundUp(Erofs.SUPER_OFFSET + SuperBlock.SIZE
        + (device == null ? 0 : DeviceSlot.SIZE), Erofs.ISLOT_SIZE);
    for (InodePlan p : plans) {
      int hdr = (p.extended ? InodeExtended.SIZE : InodeCompact.SIZE) + p.xattrBody.length;
      long record;
      p.startBlk = Erofs.NULL_ADDR;
      if (p.isChunked()) {
        p.datalayout = Erofs.DATALAYOUT_CHUNK_BASED;
        p.chunkIndexPos = Erofs.roundUp(pos + hdr, ChunkIndex.SIZE);
        record = p.chunkIndexPos - pos + (long) ChunkIndex.SIZE * p.chunkBlocks.length;
      } else if (p.size == 0 || !hasData(p.inode)) {
        p.datalayout = Erofs.DATALAYOUT_FLAT_PLAIN;
        p.startBlk = 0;
        record = hdr;
      } else {
        int tail = (int) (p.size % blockSize);
        boolean inline = false;
        if (tail != 0) {
          if ((pos + hdr) % blockSize + tail > blockSize && hdr + tail <= blockSize) {
            pos = Erofs.roundUp(pos, blockSize); // start a fresh block so the tail fits
          }
          inline = (pos + hdr) % blockSize + tail <= blockSize;
        }
        p.datalayout = inline ? Erofs.DATALAYOUT_FLAT_INLINE : Erofs.DATALAYOUT_FLAT_PLAIN;
        p.tailLen = inline ? tail : 0;
        p.tailPos = pos + hdr;
        p.dataBlocks = Erofs.roundUp(p.size - p.tailLen, blockSize) / blockSize;
        record = hdr + p.tailLen;
      }
      p.pos = pos;
      p.nid = pos / Erofs.ISLOT_SIZE;
      pos = Erofs.roundUp(pos + record, Erofs.ISLOT_SIZE);
    }
    if (plans.get(0).nid > 0xFFFF) {
      throw new IllegalStateException("root NID " + plans.get(0).nid + " does not fit 16 bits");
    }
    metaEnd = pos;
    long next = Erofs.roundUp(pos, blockSize) / blockSize;
    for (InodePlan p : plans) {
      if (p.dataBlocks > 0) {
        p.startBlk = next;
        next += p.dataBlocks;
      }
    }
    totalBlocks = next;
    if (totalBlocks > 0xFFFFFFFFL) {
      throw new IOException("image needs " + totalBlocks + " blocks, more than 32-bit addresses allow");
    }
    if (device != null) {
      device.uniaddr = totalBlocks; // until setUniaddr: a trailer may follow the image
    }
    long metaBytes = Erofs.roundUp(metaEnd, blockSize);
    if (metaBytes > Integer.MAX_VALUE - 8) {
      throw new IOException("metadata of " + metaBytes + " bytes is too large");
    }
    meta = Erofs.le(ByteBuffer.allocate((int) metaBytes));
  }

  /** Regular files, directories and symlinks have data; devices, fifos and sockets do not. */
  private static boolean hasData(TreeInode n) {
    return n.isRegular() || n.isDirectory() || n.isSymlink();
  }

  /**
   * Where device 1 starts in the flat address space: right after everything the meta blob
   * holds, so {@code cat meta blob} mounts without device= (see {@link BlobIndex}).
   */
  void setUniaddr(long blocks) {
    device.uniaddr = blocks;
  }

  long totalBlocks() {
    return totalBlocks;
  }

  /** Serializes inodes, xattrs, inline symlink/dir data and chunk indexes into the meta buffer. */
  void encodeMetadata() {
    for (InodePlan p : plans) {
      TreeInode n = p.inode;
      if (n.isDirectory()) {
        List<DirBlocks.Entry> entries = new ArrayList<>();
        entries.add(new DirBlocks.Entry(new byte[] {'.'}, p.nid, Erofs.FT_DIR));
        entries.add(new DirBlocks.Entry(new byte[] {'.', '.'}, parentNid(p), Erofs.FT_DIR));
        for (Map.Entry<byte[], TreeInode> c : n.children.entrySet()) {
          InodePlan cp = planOf.get(c.getValue());
          entries.add(new DirBlocks.Entry(c.getKey(), cp.nid, Erofs.fileType(c.getValue().mode)));
        }
        entries.sort((a, b) -> TreeInode.NAME_ORDER.compare(a.name(), b.name()));
        p.dirData = DirBlocks.encode(entries, blockSize);
      }
      writeInode(p);
      if (p.tailLen > 0 && !n.isRegular()) {
        byte[] data = n.isDirectory() ? p.dirData : n.symlinkTarget;
        meta.put((int) p.tailPos, data, (int) (p.size - p.tailLen), p.tailLen);
      }
      if (p.isChunked()) {
        ChunkIndex ci = new ChunkIndex();
        ci.deviceId = p.chunkDevice;
        meta.position((int) p.chunkIndexPos);
        for (long blk : p.chunkBlocks) {
          ci.startblkLo = blk;
          ci.deviceId = blk == Erofs.NULL_ADDR ? 0 : p.chunkDevice;
          ci.write(meta);
        }
      }
    }
  }

  private final Map<TreeInode, Long> parentNids = new IdentityHashMap<>();

  private long parentNid(InodePlan dir) {
    if (parentNids.isEmpty()) {
      parentNids.put(plans.get(0).inode, plans.get(0).nid);
      for (InodePlan p : plans) {
        if (p.inode.isDirectory()) {
          for (TreeInode c : p.inode.children.values()) {
            if (c.isDirectory()) {
              parentNids.put(c, p.nid);
            }
          }
        }
      }
    }
    return parentNids.get(dir.inode);
  }

  private void writeInode(InodePlan p) {
    TreeInode n = p.inode;
    int u;
    if (p.isChunked()) {
      u = (p.chunkBits - blkszbits) | Erofs.CHUNK_FORMAT_INDEXES;
    } else if (n.isDevice()) {
      u = Erofs.encodeRdev(n.rdevMajor, n.rdevMinor);
    } else if ((n.mode & Erofs.S_IFMT) == Erofs.S_IFIFO || (n.mode & Erofs.S_IFMT) == Erofs.S_IFSOCK) {
      u = 0;
    } else {
      u = (int) p.startBlk;
    }
    int icount = io.lazypull.erofs.format.XattrIbodyHeader.icount(p.xattrBody.length);
    meta.position((int) p.pos);
    if (p.extended) {
      InodeExtended i = new InodeExtended();
      i.format = Erofs.INODE_LAYOUT_EXTENDED | (p.datalayout << 1);
      i.xattrIcount = icount;
      i.mode = n.mode;
      i.size = p.size;
      i.u = u;
      i.ino = p.ino;
      i.uid = n.uid;
      i.gid = n.gid;
      i.mtime = n.mtime;
      i.mtimeNsec = n.mtimeNsec;
      i.nlink = p.nlink;
      i.write(meta);
    } else {
      InodeCompact i = new InodeCompact();
      i.format = Erofs.INODE_LAYOUT_COMPACT | (p.datalayout << 1);
      i.xattrIcount = icount;
      i.mode = n.mode;
      i.nlink = (int) p.nlink;
      i.size = p.size;
      i.u = u;
      i.ino = p.ino;
      i.uid = (int) n.uid;
      i.gid = (int) n.gid;
      i.write(meta);
    }
    meta.put(p.xattrBody);
  }

  /** Stores a regular file's inline tail into the meta buffer. */
  void putTail(InodePlan p, ByteBuffer tail) {
    meta.put((int) p.tailPos, tail, tail.position(), tail.remaining());
  }

  /**
   * Fills in the superblock and device slot and computes the checksum: returns the metadata
   * blocks, ready to be written at byte 0 (the data blocks follow them).
   */
  ByteBuffer finishMetadata() {
    SuperBlock sb = new SuperBlock();
    sb.magic = Erofs.MAGIC;
    sb.featureCompat = Erofs.FEATURE_COMPAT_SB_CHKSUM | Erofs.FEATURE_COMPAT_MTIME;
    sb.blkszbits = blkszbits;
    sb.rootNid = (int) plans.get(0).nid;
    sb.inos = plans.size();
    sb.buildTime = buildTime;
    sb.buildTimeNsec = buildTimeNsec;
    sb.blocks = totalBlocks;
    boolean chunked = plans.stream().anyMatch(InodePlan::isChunked);
    sb.featureIncompat = (chunked ? Erofs.FEATURE_INCOMPAT_CHUNKED_FILE : 0)
        | (device != null ? Erofs.FEATURE_INCOMPAT_DEVICE_TABLE : 0);
    if (device != null) {
      sb.extraDevices = 1;
      sb.devtSlotoff = DEVT_SLOTOFF;
      meta.position(DEVT_SLOTOFF * DeviceSlot.SIZE);
      device.write(meta);
    }
    meta.position(Erofs.SUPER_OFFSET);
    sb.write(meta);
    sb.checksum = Erofs.superblockChecksum(meta, blockSize);
    meta.putInt(Erofs.SUPER_OFFSET + 4, sb.checksum);
    return meta.clear();
  }

  static void writeFully(FileChannel out, ByteBuffer src, long pos) throws IOException {
    while (src.hasRemaining()) {
      pos += out.write(src, pos);
    }
  }
}
