package io.lazypull.testing;

import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * Compares two directory trees the way a container runtime would see them: names, file types,
 * modes (setuid, sticky included), uid/gid, sizes, content, symlink targets, hard links (the
 * set of names sharing an inode), device numbers, xattrs of every namespace and mtimes with
 * nanoseconds. Symlinks are never followed. Used to check a kernel-mounted image against its
 * source, and an extraction against its image.
 *
 * <p>Content is compared by a sparse-aware digest: SHA-256 over the offsets and bytes of every
 * non-zero 64 KiB block (holes are skipped with SEEK_DATA), so a 5 GiB sparse file costs what
 * its data costs, and a file stored as holes equals one stored as zeros.
 *
 * <pre>{@code
 * TreeDiff.assertSame(source, mountPoint, TreeDiff.options().ignore(p -> p.endsWith(".sock")));
 * }</pre>
 */
public final class TreeDiff {
  /** Not "unix:*": that also resolves owner and group names through NSS, per file. */
  private static final String STAT_ATTRIBUTES =
      "unix:mode,uid,gid,nlink,dev,ino,rdev,size,lastModifiedTime";
  private static final int BLOCK = 64 * 1024;
  private static final int S_IFMT = 0170000;
  private static final int S_IFDIR = 0040000;
  private static final int S_IFREG = 0100000;
  private static final int S_IFLNK = 0120000;
  private static final int S_IFCHR = 0020000;
  private static final int S_IFBLK = 0060000;

  private TreeDiff() {}

  /** What to compare; everything by default. */
  public static final class Options {
    boolean mtimes = true;
    boolean symlinkMtimes = true;
    boolean dirNlink = true;
    boolean root = true;
    Predicate<String> ignorePath = p -> false;
    Predicate<String> ignoreXattr = n -> n.equals("security.selinux");

    private Options() {}

    public Options mtimes(boolean compare) {
      this.mtimes = compare;
      return this;
    }

    public Options symlinkMtimes(boolean compare) {
      this.symlinkMtimes = compare;
      return this;
    }

    /** Directory link counts (2 + subdirectories on ext4 and EROFS). */
    public Options dirNlink(boolean compare) {
      this.dirNlink = compare;
      return this;
    }

    /** Whether the attributes of the two roots themselves are compared. */
    public Options root(boolean compare) {
      this.root = compare;
      return this;
    }

    /** Paths (relative, "a/b") present on either side that are left out, with their subtrees. */
    public Options ignore(Predicate<String> path) {
      this.ignorePath = this.ignorePath.or(path);
      return this;
    }

    public Options ignoreXattr(Predicate<String> name) {
      this.ignoreXattr = this.ignoreXattr.or(name);
      return this;
    }
  }

  public static Options options() {
    return new Options();
  }

  /** Throws an AssertionError listing the differences (at most 50) if the trees differ. */
  public static void assertSame(Path expected, Path actual, Options options) throws IOException {
    List<String> diffs = diff(expected, actual, options);
    if (!diffs.isEmpty()) {
      StringBuilder b = new StringBuilder(diffs.size() + " difference(s) between " + expected
          + " and " + actual + ":");
      diffs.stream().limit(50).forEach(d -> b.append("\n  ").append(d));
      throw new AssertionError(b.toString());
    }
  }

  /** The differences, one line each ("a/b: mode 0100644 != 0100755"); empty if the same. */
  public static List<String> diff(Path expected, Path actual, Options options) throws IOException {
    Map<String, Entry> left = snapshot(expected, options);
    Map<String, Entry> right = snapshot(actual, options);
    List<String> out = new ArrayList<>();
    TreeSet<String> all = new TreeSet<>(left.keySet());
    all.addAll(right.keySet());
    for (String path : all) {
      Entry a = left.get(path);
      Entry b = right.get(path);
      if (a == null) {
        out.add(path + ": only in " + actual);
      } else if (b == null) {
        out.add(path + ": only in " + expected);
      } else if (!path.isEmpty() || options.root) {
        compare(path, a, b, options, out);
      }
    }
    return out;
  }

  private static void compare(String path, Entry a, Entry b, Options o, List<String> out) {
    String p = path.isEmpty() ? "/" : path;
    check(out, p, "mode", oct(a.mode), oct(b.mode));
    check(out, p, "uid", a.uid, b.uid);
    check(out, p, "gid", a.gid, b.gid);
    boolean dir = (a.mode & S_IFMT) == S_IFDIR;
    if (!dir) {
      check(out, p, "size", a.size, b.size);
    }
    if (!dir || o.dirNlink) {
      check(out, p, "nlink", a.nlink, b.nlink);
    }
    check(out, p, "rdev", a.rdev, b.rdev);
    check(out, p, "content", a.content, b.content);
    check(out, p, "symlink target", a.target, b.target);
    check(out, p, "hard links", a.links, b.links);
    check(out, p, "xattrs", a.xattrs, b.xattrs);
    boolean link = (a.mode & S_IFMT) == S_IFLNK;
    if (o.mtimes && (!link || o.symlinkMtimes)) {
      check(out, p, "mtime", a.mtime, b.mtime);
    }
  }

  private static void check(List<String> out, String path, String what, Object a, Object b) {
    if (!Objects.equals(a, b)) {
      out.add(path + ": " + what + " " + a + " != " + b);
    }
  }

  private static String oct(int mode) {
    return "0" + Integer.toOctalString(mode);
  }

  private static final class Entry {
    int mode;
    long uid;
    long gid;
    long size;
    long nlink;
    String rdev;
    String content;
    String target;
    String links;
    Map<String, String> xattrs;
    FileTime mtime;
    String inode;
  }

  private static Map<String, Entry> snapshot(Path root, Options options) throws IOException {
    Map<String, Entry> entries = new TreeMap<>();
    walk(root, root, "", entries, options);
    // Hard links: for every non-directory, the sorted names sharing its inode.
    Map<String, TreeSet<String>> byInode = new HashMap<>();
    entries.forEach((path, e) -> {
      if ((e.mode & S_IFMT) != S_IFDIR) {
        byInode.computeIfAbsent(e.inode, k -> new TreeSet<>()).add(path);
      }
    });
    entries.forEach((path, e) -> {
      if ((e.mode & S_IFMT) != S_IFDIR) {
        TreeSet<String> names = byInode.get(e.inode);
        e.links = names.size() > 1 ? String.join(",", names) : null;
      }
    });
    return entries;
  }

  private static void walk(Path root, Path path, String rel, Map<String, Entry> out, Options o)
      throws IOException {
    Map<String, Object> a = Files.readAttributes(path, STAT_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
    Entry e = new Entry();
    e.mode = (Integer) a.get("mode");
    e.uid = ((Integer) a.get("uid")) & 0xFFFFFFFFL;
    e.gid = ((Integer) a.get("gid")) & 0xFFFFFFFFL;
    e.size = (Long) a.get("size");
    e.nlink = (Integer) a.get("nlink");
    e.mtime = (FileTime) a.get("lastModifiedTime");
    e.inode = a.get("dev") + ":" + a.get("ino");
    int type = e.mode & S_IFMT;
    if (type == S_IFCHR || type == S_IFBLK) {
      long rdev = (Long) a.get("rdev");
      long major = ((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL);
      long minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xffL);
      e.rdev = major + ":" + minor;
    }
    if (type == S_IFLNK) {
      e.target = Files.readSymbolicLink(path).toString();
    }
    if (type == S_IFREG) {
      e.content = contentDigest(path);
    }
    e.xattrs = new TreeMap<>();
    for (String name : Posix.listXattrs(path.toString())) {
      if (!o.ignoreXattr.test(name)) {
        byte[] v = Posix.getXattr(path.toString(), name);
        e.xattrs.put(name, v == null ? "(vanished)" : HexFormat.of().formatHex(v));
      }
    }
    out.put(rel, e);
    if (type == S_IFDIR) {
      List<Path> children = new ArrayList<>();
      try (DirectoryStream<Path> ds = Files.newDirectoryStream(path)) {
        ds.forEach(children::add);
      }
      for (Path child : children) {
        String childRel = rel.isEmpty() ? child.getFileName().toString() : rel + "/" + child.getFileName();
        if (!o.ignorePath.test(childRel)) {
          walk(root, child, childRel, out, o);
        }
      }
    }
  }

  /**
   * SHA-256 over (offset, bytes) of every non-zero 64 KiB block, holes skipped: equal for two
   * files with the same bytes however their zeros are stored.
   */
  public static String contentDigest(Path file) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException ex) {
      throw new IllegalStateException(ex);
    }
    int fd = Posix.open(file.toString(), Posix.O_RDONLY | Posix.O_NOFOLLOW, 0);
    try {
      ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
      byte[] heap = new byte[BLOCK];
      long pos = 0;
      while (true) {
        long data = Posix.seekData(fd, pos);
        if (data < 0) {
          break;
        }
        long block = data / BLOCK * BLOCK; // compare whole aligned blocks on both sides
        long hole = Posix.seekHole(fd, data);
        for (pos = block; pos < hole; pos += BLOCK) {
          buf.clear();
          int n = Posix.pread(fd, buf, pos);
          if (n <= 0) {
            break;
          }
          buf.flip().get(heap, 0, n);
          boolean zero = true;
          for (int i = 0; i < n && zero; i++) {
            zero = heap[i] == 0;
          }
          if (!zero) {
            md.update(ByteBuffer.allocate(8).putLong(pos).array());
            md.update(heap, 0, n);
          }
          if (n < BLOCK) {
            pos += n;
            break;
          }
        }
        pos = Math.max(pos, hole);
      }
    } finally {
      Posix.closeQuietly(fd);
    }
    return HexFormat.of().formatHex(md.digest());
  }
}
