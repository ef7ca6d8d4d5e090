package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarFile;

/**
 * Reads an uncompressed tar (commons-compress {@link TarFile}, which handles PAX, GNU long
 * names and sparse members) into {@link TreeInode}s, like {@code mkfs.erofs --tar --aufs}:
 *
 * <ul>
 *   <li>{@code .wh.NAME} becomes a character device 0:0 named NAME (mode 020000), and its
 *       directory gets an empty {@code trusted.overlay.origin} so overlayfs never iterates it
 *       directly; {@code .wh..wh..opq} sets {@code trusted.overlay.opaque=y} on its directory.
 *   <li>Directories the archive implies but does not list get mode 0755, root:root and the
 *       build time as mtime ({@link #implicitDirectories}).
 *   <li>Entries that would leave the root are refused with the entry named: absolute paths,
 *       {@code ..} components, and paths or hard-link targets that go through a symlink of
 *       the archive. A later entry of the same name replaces an earlier one, as extraction does.
 * </ul>
 *
 * Member data stays in the tar: each regular file records its data offset and is read from
 * the tar only when the writer needs it.
 */
final class TarSource implements Closeable {
  private static final String WHITEOUT_PREFIX = ".wh.";
  private static final String OPAQUE_MARKER = ".wh..wh..opq";
  private static final String PAX_XATTR = "SCHILY.xattr.";

  private final TarFile tarFile;
  private final FileChannel channel;
  private final boolean convertWhiteouts;
  private final TreeInode root = new TreeInode(Erofs.S_IFDIR | 0755);
  final List<TreeInode> implicitDirectories = new ArrayList<>();
  /** The current member's xattrs as raw bytes ({@link PaxXattrs}), or null to use the parsed ones. */
  private Map<String, byte[]> rawXattrs;

  private TarSource(Path tar, boolean convertWhiteouts) throws IOException {
    this.tarFile = new TarFile(tar);
    this.channel = FileChannel.open(tar, StandardOpenOption.READ);
    this.convertWhiteouts = convertWhiteouts;
    root.origin = "tar root";
    root.implicit = true;
    implicitDirectories.add(root);
  }

  /** Scans the tar; the returned source must stay open while the image is written. */
  static TarSource scan(Path tar, boolean convertWhiteouts) throws IOException {
    TarSource source = new TarSource(tar, convertWhiteouts);
    try {
      long headersStart = 0;
      for (TarArchiveEntry entry : source.tarFile.getEntries()) {
        source.rawXattrs = entry.isSparse() ? null
            : PaxXattrs.read(source.channel, headersStart, entry.getDataOffset());
        source.add(entry);
        // The next member's headers start after this member's data, padded to 512 bytes;
        // after a sparse member that is unknown, and its successor falls back (rawXattrs null).
        headersStart = entry.isSparse() ? Long.MAX_VALUE
            : entry.getDataOffset() + (entry.getSize() + 511) / 512 * 512;
      }
      return source;
    } catch (IOException | RuntimeException e) {
      source.close();
      throw e;
    }
  }

  TreeInode root() {
    return root;
  }

  private void add(TarArchiveEntry entry) throws IOException {
    String where = "tar entry '" + entry.getName() + "'";
    List<String> path = splitPath(entry.getName(), where);
    if (path.isEmpty()) {
      if (!entry.isDirectory()) {
        throw new IOException(where + ": the root must be a directory");
      }
      applyAttributes(root, entry, where);
      root.implicit = false;
      implicitDirectories.remove(root);
      return;
    }
    TreeInode parent = parentOf(path, where);
    String last = path.get(path.size() - 1);
    if (convertWhiteouts && last.startsWith(WHITEOUT_PREFIX)) {
      if (last.equals(OPAQUE_MARKER)) {
        parent.xattrs.put("trusted.overlay.opaque", new byte[] {'y'});
        return;
      }
      String hidden = last.substring(WHITEOUT_PREFIX.length());
      if (hidden.isEmpty() || hidden.equals(".") || hidden.equals("..")) {
        throw new IOException(where + ": whiteout of an invalid name");
      }
      TreeInode whiteout = new TreeInode(Erofs.S_IFCHR);
      applyAttributes(whiteout, entry, where);
      whiteout.mode = Erofs.S_IFCHR; // erofs-utils: permission bits 0, rdev 0:0
      parent.xattrs.put("trusted.overlay.origin", new byte[0]);
      put(parent, hidden, whiteout);
      return;
    }
    TreeInode inode;
    if (entry.isLink()) {
      List<String> targetPath = splitPath(entry.getLinkName(), where + " (hard link target)");
      inode = resolve(targetPath, where);
      if (inode == null || inode.isDirectory()) {
        throw new IOException(where + ": hard link target '" + entry.getLinkName()
            + "' is not an earlier non-directory entry of the archive");
      }
    } else if (entry.isDirectory()) {
      TreeInode existing = parent.children.get(bytes(last));
      if (existing != null && existing.isDirectory()) {
        existing.xattrs.clear();
        applyAttributes(existing, entry, where);
        if (existing.implicit) {
          existing.implicit = false;
          implicitDirectories.remove(existing);
        }
        return;
      }
      inode = new TreeInode(Erofs.S_IFDIR);
      applyAttributes(inode, entry, where);
    } else {
      inode = new TreeInode(typeOf(entry, where));
      applyAttributes(inode, entry, where);
      if (inode.isSymlink()) {
        inode.symlinkTarget = entry.getLinkName().getBytes(StandardCharsets.UTF_8);
        inode.size = inode.symlinkTarget.length;
        if (inode.size == 0) {
          throw new IOException(where + ": empty symlink target");
        }
      } else if (inode.isDevice()) {
        inode.rdevMajor = entry.getDevMajor();
        inode.rdevMinor = entry.getDevMinor();
      } else if (inode.isRegular()) {
        inode.size = entry.isSparse() ? entry.getRealSize() : entry.getSize();
        if (inode.size > 0) {
          if (!entry.isSparse()) {
            inode.tarDataOffset = entry.getDataOffset();
          }
          inode.content = entry.isSparse()
              ? () -> new StreamReader(tarFile.getInputStream(entry))
              : new MemberContent(entry.getDataOffset(), inode.size);
        }
      }
    }
    put(parent, last, inode);
  }

  private static int typeOf(TarArchiveEntry entry, String where) throws IOException {
    if (entry.isSymbolicLink()) {
      return Erofs.S_IFLNK;
    }
    if (entry.isCharacterDevice()) {
      return Erofs.S_IFCHR;
    }
    if (entry.isBlockDevice()) {
      return Erofs.S_IFBLK;
    }
    if (entry.isFIFO()) {
      return Erofs.S_IFIFO;
    }
    if (entry.isFile()) {
      return Erofs.S_IFREG;
    }
    throw new IOException(where + ": unsupported tar entry type '" + (char) entry.getLinkFlag() + "'");
  }

  private void applyAttributes(TreeInode inode, TarArchiveEntry entry, String where)
      throws IOException {
    inode.origin = where;
    inode.mode = (inode.mode & Erofs.S_IFMT) | (entry.getMode() & 07777);
    inode.uid = entry.getLongUserId();
    inode.gid = entry.getLongGroupId();
    if (inode.uid < 0 || inode.uid > 0xFFFFFFFFL || inode.gid < 0 || inode.gid > 0xFFFFFFFFL) {
      throw new IOException(where + ": uid/gid " + inode.uid + "/" + inode.gid + " out of range");
    }
    Instant t = entry.getLastModifiedTime().toInstant();
    inode.mtime = t.getEpochSecond();
    inode.mtimeNsec = t.getNano();
    if (rawXattrs != null) {
      inode.xattrs.putAll(rawXattrs);
      return;
    }
    for (Map.Entry<String, String> h : entry.getExtraPaxHeaders().entrySet()) {
      if (h.getKey().startsWith(PAX_XATTR)) {
        String value = h.getValue();
        if (value.indexOf('\uFFFD') >= 0) {
          // commons-compress decodes PAX values as UTF-8; a binary value would be corrupted.
          throw new IOException(where + ": xattr " + h.getKey().substring(PAX_XATTR.length())
              + " has a binary (non-UTF-8) value, which the tar reader cannot preserve");
        }
        inode.xattrs.put(h.getKey().substring(PAX_XATTR.length()), value.getBytes(StandardCharsets.UTF_8));
      }
    }
  }

  /**
   * Splits a member name into components: a leading "./" and empty or "." components are
   * dropped; absolute names and ".." are refused.
   */
  static List<String> splitPath(String name, String where) throws IOException {
    if (name.startsWith("/")) {
      throw new IOException(where + ": absolute path escapes the root");
    }
    List<String> parts = new ArrayList<>();
    for (String part : name.split("/")) {
      if (part.isEmpty() || part.equals(".")) {
        continue;
      }
      if (part.equals("..")) {
        throw new IOException(where + ": '..' escapes the root");
      }
      if (part.getBytes(StandardCharsets.UTF_8).length > Erofs.NAME_LEN) {
        throw new IOException(where + ": a name is longer than " + Erofs.NAME_LEN + " bytes");
      }
      if (part.indexOf('\0') >= 0) {
        throw new IOException(where + ": a name contains NUL");
      }
      parts.add(part);
    }
    return parts;
  }

  /** The directory that will hold the last component, creating implicit directories. */
  private TreeInode parentOf(List<String> path, String where) throws IOException {
    TreeInode dir = root;
    for (int i = 0; i < path.size() - 1; i++) {
      byte[] name = bytes(path.get(i));
      TreeInode next = dir.children.get(name);
      if (next == null) {
        next = new TreeInode(Erofs.S_IFDIR | 0755);
        next.implicit = true;
        next.origin = where + " (implied directory " + String.join("/", path.subList(0, i + 1)) + ")";
        implicitDirectories.add(next);
        dir.children.put(name, next);
      } else if (next.isSymlink()) {
        throw new IOException(where + ": path goes through the symlink '"
            + String.join("/", path.subList(0, i + 1)) + "' of the archive");
      } else if (!next.isDirectory()) {
        throw new IOException(where + ": '" + String.join("/", path.subList(0, i + 1))
            + "' is not a directory");
      }
      dir = next;
    }
    return dir;
  }

  /** The existing inode at {@code path} without following symlinks on the way, or null. */
  private TreeInode resolve(List<String> path, String where) throws IOException {
    if (path.isEmpty()) {
      return root;
    }
    TreeInode dir = root;
    for (int i = 0; i < path.size() - 1; i++) {
      TreeInode next = dir.children.get(bytes(path.get(i)));
      if (next == null) {
        return null;
      }
      if (next.isSymlink()) {
        throw new IOException(where + ": hard link target goes through the symlink '"
            + String.join("/", path.subList(0, i + 1)) + "' of the archive");
      }
      if (!next.isDirectory()) {
        return null;
      }
      dir = next;
    }
    return dir.children.get(bytes(path.get(path.size() - 1)));
  }

  private static void put(TreeInode parent, String name, TreeInode inode) {
    parent.children.put(bytes(name), inode);
  }

  private static byte[] bytes(String name) {
    return name.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public void close() throws IOException {
    try {
      tarFile.close();
    } finally {
      channel.close();
    }
  }

  /** A contiguous member: positional reads of the tar file. */
  private final class MemberContent implements FileContent {
    private final long offset;
    private final long size;

    MemberContent(long offset, long size) {
      this.offset = offset;
      this.size = size;
    }

    @Override
    public Reader open() {
      return new Reader() {
        long pos;

        @Override
        public int read(ByteBuffer dst) throws IOException {
          if (pos >= size) {
            return -1;
          }
          ByteBuffer window = dst.duplicate();
          window.limit(window.position() + (int) Math.min(dst.remaining(), size - pos));
          int n = channel.read(window, offset + pos);
          if (n < 0) {
            throw new IOException("tar ends inside a member at byte " + (offset + pos));
          }
          dst.position(dst.position() + n);
          pos += n;
          return n;
        }

        @Override
        public void skip(long length, String origin) {
          pos += length;
        }

        @Override
        public void close() {}
      };
    }
  }

  /** A sparse member, expanded by commons-compress. */
  private static final class StreamReader implements FileContent.Reader {
    private final InputStream in;

    StreamReader(InputStream in) {
      this.in = in;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
      byte[] tmp = new byte[Math.min(dst.remaining(), 1 << 16)];
      int n = in.read(tmp);
      if (n > 0) {
        dst.put(tmp, 0, n);
      }
      return n;
    }

    @Override
    public void close() throws IOException {
      in.close();
    }
  }
}
