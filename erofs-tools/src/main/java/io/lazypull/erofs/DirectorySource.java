package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.HashMap;
import java.util.Map;

/**
 * Scans a directory tree (never following symlinks) into {@link TreeInode}s: every file type,
 * owners, modes, nanosecond mtimes, xattrs of every namespace, hard links (same st_dev and
 * st_ino). File data is only opened later, by the writer.
 */
final class DirectorySource {
  /** Not "unix:*": that also resolves owner and group names through NSS, per file. */
  private static final String STAT_ATTRIBUTES =
      "unix:mode,uid,gid,nlink,dev,ino,rdev,size,lastModifiedTime";
  private final Map<String, TreeInode> inodesByDevIno = new HashMap<>();

  /** Returns the root directory of the tree at {@code dir}. */
  static TreeInode scan(Path dir) throws IOException {
    Path root = dir.toAbsolutePath();
    if (!Files.isDirectory(root, LinkOption.NOFOLLOW_LINKS)) {
      throw new IOException("source is not a directory: " + dir);
    }
    return new DirectorySource().scanInode(root);
  }

  private TreeInode scanInode(Path path) throws IOException {
    Map<String, Object> a = Files.readAttributes(path, STAT_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
    int mode = (Integer) a.get("mode");
    int nlink = (Integer) a.get("nlink");
    String devIno = a.get("dev") + ":" + a.get("ino");
    if ((mode & Erofs.S_IFMT) != Erofs.S_IFDIR && nlink > 1) {
      TreeInode seen = inodesByDevIno.get(devIno);
      if (seen != null) {
        return seen; // another name of a hard-linked file
      }
    }
    TreeInode inode = new TreeInode(mode);
    inode.origin = path.toString();
    inode.uid = ((Integer) a.get("uid")) & 0xFFFFFFFFL;
    inode.gid = ((Integer) a.get("gid")) & 0xFFFFFFFFL;
    FileTime mtime = (FileTime) a.get("lastModifiedTime");
    java.time.Instant t = mtime.toInstant();
    inode.mtime = t.getEpochSecond();
    inode.mtimeNsec = t.getNano();
    readXattrs(path, inode);
    switch (mode & Erofs.S_IFMT) {
      case Erofs.S_IFREG -> {
        inode.size = (Long) a.get("size");
        if (inode.size > 0) {
          inode.content = new PathContent(path);
        }
      }
      case Erofs.S_IFLNK -> {
        byte[] target = Files.readSymbolicLink(path).toString().getBytes(StandardCharsets.UTF_8);
        inode.symlinkTarget = target;
        inode.size = target.length;
      }
      case Erofs.S_IFCHR, Erofs.S_IFBLK -> {
        long rdev = (Long) a.get("rdev");
        // glibc dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
        inode.rdevMajor = (int) (((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL));
        inode.rdevMinor = (int) ((rdev & 0xff) | ((rdev >>> 12) & ~0xffL));
      }
      case Erofs.S_IFDIR -> {
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(path)) {
          for (Path child : entries) {
            byte[] name = child.getFileName().toString().getBytes(StandardCharsets.UTF_8);
            inode.children.put(name, scanInode(child));
          }
        }
      }
      default -> { } // fifo, socket: nothing more
    }
    if ((mode & Erofs.S_IFMT) != Erofs.S_IFDIR && nlink > 1) {
      inodesByDevIno.put(devIno, inode);
    }
    return inode;
  }

  private static void readXattrs(Path path, TreeInode inode) throws IOException {
    String p = path.toString();
    for (String name : Posix.listXattrs(p)) {
      byte[] value = Posix.getXattr(p, name);
      if (value != null) {
        inode.xattrs.put(name, value);
      }
    }
  }

  /** A file of the source tree, read with pread; holes are found with SEEK_DATA. */
  private static final class PathContent implements FileContent {
    private final Path path;

    PathContent(Path path) {
      this.path = path;
    }

    @Override
    public Reader open() throws IOException {
      int fd = Posix.open(path.toString(), Posix.O_RDONLY | Posix.O_NOFOLLOW, 0);
      return new Reader() {
        long pos;

        @Override
        public int read(ByteBuffer dst) throws ErrnoException {
          if (!dst.hasRemaining()) {
            return 0;
          }
          int n = Posix.pread(fd, dst, pos);
          if (n == 0) {
            return -1;
          }
          pos += n;
          return n;
        }

        @Override
        public void skip(long length, String origin) {
          pos += length;
        }

        @Override
        public boolean skipHole(long length) throws ErrnoException {
          long data = Posix.seekData(fd, pos);
          if (data == -1 || data >= pos + length) {
            pos += length;
            return true;
          }
          return false;
        }

        @Override
        public void close() throws ErrnoException {
          Posix.close(fd);
        }
      };
    }
  }
}
