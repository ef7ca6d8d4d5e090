package io.lazypull.testing;

import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Source trees for image tests: a generated one with every file type and edge case, copies of
 * real data nobody here wrote (part of the installed JDK, /usr/share/doc), and GNU tar
 * archives of them. Generated once per JVM and deleted at exit.
 *
 * <pre>
 * gen/
 *   !bang -dash " space"        names sorting before "." and ".."
 *   empty one b4095 b4096 b4097 sizes around a block
 *   mixed-chunks                3 MiB + 123: random, zeros, the same random again, tail
 *   nnn...n.txt (255 bytes)     and a 255-byte directory name with a file inside
 *   many/ f00000..f02999        a multi-block directory
 *   deep/a/b/c/d/e/f, emptydir/
 *   hard2, links/hard1, links/sub/hard3      one inode, nlink 3
 *   owners/ bigids(100000:200000) u65535 u70000g5
 *   modes/ setuid(4755) setgid(2755) sticky/(1777) none(000)
 *   dev/ chr-300-70000 blk-7-0 chr-1-3 whiteout(0:0) fifo sock
 *   sym/ short long(300 bytes) abs dangling todir
 *   xattrs/ user(user.comment, user.big 600 B) many(20) cap(security.capability)
 *           opaque/(trusted.overlay.*, origin empty) symlink(trusted.* on a link) binary(user.bin)
 *   [huge-sparse: 4 GiB + 4097 bytes, data at 0, 2 GiB and the end]
 * </pre>
 * Mtimes: half the entries share one time (compact inodes), the rest have distinct seconds
 * and nanoseconds (extended inodes). Image tests of every module use it with {@link TreeDiff}.
 */
public final class TestTrees {
  public static final long SHARED_MTIME = 1_700_000_000L;
  public static final long HUGE_SIZE = (4L << 30) + 4097;

  private static Path base;

  private TestTrees() {}

  /** A per-JVM scratch directory under target/, removed at exit. */
  public static synchronized Path scratch() throws IOException {
    if (base == null) {
      Path target = Path.of(System.getProperty("user.dir"), "target");
      Files.createDirectories(target);
      base = Files.createTempDirectory(target, "erofs-test-");
      Path b = base;
      Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteQuietly(b)));
    }
    return base;
  }

  public static Path newDir(String prefix) throws IOException {
    return Files.createTempDirectory(scratch(), prefix);
  }

  /** Generates the edge-case tree. Needs root (devices, ownership, trusted.*). */
  public static Path generate(Path root, boolean hugeSparse) throws IOException {
    Files.createDirectories(root);
    Random rnd = new Random(42);
    List<Path> all = new ArrayList<>();
    all.add(root);
    for (String n : List.of("!bang", "-dash", " space")) {
      all.add(write(root.resolve(n), n.getBytes(StandardCharsets.UTF_8)));
    }
    all.add(write(root.resolve("empty"), new byte[0]));
    all.add(write(root.resolve("one"), new byte[] {'1'}));
    for (int size : new int[] {4095, 4096, 4097}) {
      all.add(write(root.resolve("b" + size), random(rnd, size)));
    }
    byte[] chunk = random(rnd, 1 << 20);
    Path mixed = root.resolve("mixed-chunks");
    try (FileChannel ch = FileChannel.open(mixed, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.wrap(chunk), 0);
      ch.write(java.nio.ByteBuffer.wrap(new byte[1 << 20]), 1 << 20);
      ch.write(java.nio.ByteBuffer.wrap(chunk), 2 << 20);
      ch.write(java.nio.ByteBuffer.wrap(random(rnd, 123)), 3 << 20);
    }
    all.add(mixed);
    all.add(write(root.resolve("n".repeat(251) + ".txt"), "long name".getBytes(StandardCharsets.UTF_8)));
    Path longDir = Files.createDirectory(root.resolve("d".repeat(255)));
    all.add(longDir);
    all.add(write(longDir.resolve("inside"), "x".getBytes(StandardCharsets.UTF_8)));
    all.add(write(root.resolve("utf8-\u00f1\u00e4m\u00e9"), "utf8".getBytes(StandardCharsets.UTF_8)));
    Path many = Files.createDirectory(root.resolve("many"));
    all.add(many);
    for (int i = 0; i < 3000; i++) {
      all.add(write(many.resolve(String.format("f%05d", i)), i % 10 == 0 ? new byte[] {(byte) i} : new byte[0]));
    }
    Path deep = Files.createDirectories(root.resolve("deep/a/b/c/d/e"));
    for (Path p = deep; !p.equals(root); p = p.getParent()) {
      all.add(p);
    }
    all.add(write(deep.resolve("f"), "deep".getBytes(StandardCharsets.UTF_8)));
    all.add(Files.createDirectory(root.resolve("emptydir")));
    Path links = Files.createDirectories(root.resolve("links/sub"));
    all.add(links.getParent());
    all.add(links);
    Path hard1 = write(links.getParent().resolve("hard1"), "linked".getBytes(StandardCharsets.UTF_8));
    Files.createLink(root.resolve("hard2"), hard1);
    Files.createLink(links.resolve("hard3"), hard1);
    all.add(hard1);
    Path owners = Files.createDirectory(root.resolve("owners"));
    all.add(owners);
    all.add(owned(write(owners.resolve("bigids"), new byte[] {1}), 100000, 200000));
    all.add(owned(write(owners.resolve("u65535"), new byte[] {2}), 65535, 65534));
    all.add(owned(write(owners.resolve("u70000g5"), new byte[] {3}), 70000, 5));
    Path modes = Files.createDirectory(root.resolve("modes"));
    all.add(modes);
    all.add(chmod(write(modes.resolve("setuid"), new byte[] {4}), 04755));
    all.add(chmod(write(modes.resolve("setgid"), new byte[] {5}), 02755));
    all.add(chmod(write(modes.resolve("none"), new byte[] {6}), 0));
    all.add(chmod(Files.createDirectory(modes.resolve("sticky")), 01777));
    Path dev = Files.createDirectory(root.resolve("dev"));
    all.add(dev);
    all.add(mknod(dev.resolve("chr-300-70000"), Posix.S_IFCHR | 0620, 300, 70000));
    all.add(mknod(dev.resolve("blk-7-0"), Posix.S_IFBLK | 0660, 7, 0));
    all.add(mknod(dev.resolve("chr-1-3"), Posix.S_IFCHR | 0666, 1, 3));
    all.add(mknod(dev.resolve("whiteout"), Posix.S_IFCHR, 0, 0));
    all.add(mknod(dev.resolve("fifo"), Posix.S_IFIFO | 0644, 0, 0));
    // mknod makes a socket inode too, without bind(2)'s 108-byte path limit.
    all.add(mknod(dev.resolve("sock"), 0140000 | 0755, 0, 0));
    Path sym = Files.createDirectory(root.resolve("sym"));
    all.add(sym);
    all.add(Files.createSymbolicLink(sym.resolve("short"), Path.of("../one")));
    all.add(Files.createSymbolicLink(sym.resolve("long"), Path.of("x/".repeat(149) + "yz")));
    all.add(Files.createSymbolicLink(sym.resolve("abs"), Path.of("/etc/passwd")));
    all.add(Files.createSymbolicLink(sym.resolve("dangling"), Path.of("nowhere")));
    all.add(Files.createSymbolicLink(sym.resolve("todir"), Path.of("../deep")));
    Path xattrs = Files.createDirectory(root.resolve("xattrs"));
    all.add(xattrs);
    Path user = write(xattrs.resolve("user"), "x".getBytes(StandardCharsets.UTF_8));
    Posix.setXattr(user.toString(), "user.comment", "hi there".getBytes(StandardCharsets.UTF_8));
    Posix.setXattr(user.toString(), "user.big", "b".repeat(600).getBytes(StandardCharsets.UTF_8));
    all.add(user);
    Path manyX = write(xattrs.resolve("many"), new byte[0]);
    for (int i = 0; i < 20; i++) {
      Posix.setXattr(manyX.toString(), "user.attr" + i, ("value " + i).getBytes(StandardCharsets.UTF_8));
    }
    all.add(manyX);
    Path cap = write(xattrs.resolve("cap"), new byte[] {7});
    // CAP_SETUID|CAP_NET_RAW: 0x80 is a byte that PAX-as-UTF-8 would mangle.
    byte[] capValue = {1, 0, 0, 2, (byte) 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    Posix.setXattr(cap.toString(), "security.capability", capValue);
    all.add(cap);
    Path opaque = Files.createDirectory(xattrs.resolve("opaque"));
    Posix.setXattr(opaque.toString(), "trusted.overlay.opaque", new byte[] {'y'});
    Posix.setXattr(opaque.toString(), "trusted.overlay.origin", new byte[0]);
    all.add(opaque);
    all.add(write(opaque.resolve("kept"), new byte[] {8}));
    Path link = Files.createSymbolicLink(xattrs.resolve("symlink"), Path.of("user"));
    Posix.setXattr(link.toString(), "trusted.link", "1".getBytes(StandardCharsets.UTF_8));
    all.add(link);
    Path bin = write(xattrs.resolve("binary"), new byte[] {9});
    byte[] v = new byte[256];
    for (int i = 0; i < v.length; i++) {
      v[i] = (byte) i;
    }
    Posix.setXattr(bin.toString(), "user.bin", v);
    all.add(bin);
    if (hugeSparse) {
      Path huge = root.resolve("huge-sparse");
      try (FileChannel ch = FileChannel.open(huge, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        ch.write(java.nio.ByteBuffer.wrap(random(rnd, 4096)), 0);
        ch.write(java.nio.ByteBuffer.wrap(random(rnd, 1 << 20)), 2L << 30);
        ch.write(java.nio.ByteBuffer.wrap(random(rnd, 100)), HUGE_SIZE - 100);
      }
      all.add(huge);
    }
    // Mtimes last, children before parents: creating entries touches the directory.
    all.sort(Comparator.comparingInt((Path p) -> p.getNameCount()).reversed());
    int i = 0;
    for (Path p : all) {
      Instant t = i % 2 == 0 ? Instant.ofEpochSecond(SHARED_MTIME)
          : Instant.ofEpochSecond(SHARED_MTIME - 86400 * 400L + i * 7919L, (i * 123_456_789L) % 1_000_000_000L);
      setMtime(p, t);
      i++;
    }
    return root;
  }

  private static byte[] random(Random rnd, int n) {
    byte[] b = new byte[n];
    rnd.nextBytes(b);
    return b;
  }

  private static Path write(Path p, byte[] content) throws IOException {
    return Files.write(p, content);
  }

  private static Path owned(Path p, int uid, int gid) throws IOException {
    Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
    Files.setAttribute(p, "unix:gid", gid, LinkOption.NOFOLLOW_LINKS);
    return p;
  }

  private static Path chmod(Path p, int mode) throws IOException {
    Posix.chmod(p.toString(), mode);
    return p;
  }

  private static Path mknod(Path p, int mode, int major, int minor) throws IOException {
    Posix.mknod(p.toString(), mode, major, minor);
    return p;
  }

  /**
   * Sets the mtime (atime too) with nanoseconds, never following or opening the file: the
   * JDK's setTimes opens it, which blocks on a fifo and fails on a socket, and falls back to
   * microsecond lutimes on symlinks. touch -h uses utimensat(AT_SYMLINK_NOFOLLOW).
   */
  public static void setMtime(Path p, Instant t) throws IOException {
    if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) || Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
      Files.getFileAttributeView(p, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
          .setTimes(FileTime.from(t), FileTime.from(t), null);
    } else {
      run(List.of("touch", "-h", "-d", String.format("@%d.%09d", t.getEpochSecond(), t.getNano()), p.toString()));
    }
  }

  // ---- real data ----

  private static Path jdk;
  private static Path docs;

  /**
   * A copy (cp -a: symlinks kept, owners and times preserved) of the installed JDK 17 without
   * lib/modules and jmods, to keep the suite fast: about 60 MB, 400 files, symlinks into /etc.
   */
  public static synchronized Path jdkCopy() throws IOException {
    if (jdk == null) {
      Path src = Path.of(System.getProperty("java.home")).toRealPath();
      Path dst = newDir("jdk-").resolve("jdk");
      run(List.of("cp", "-a", src.toString(), dst.toString()));
      deleteQuietly(dst.resolve("lib/modules"));
      deleteQuietly(dst.resolve("jmods"));
      jdk = dst;
    }
    return jdk;
  }

  /** A copy (cp -a) of /usr/share/doc without its largest package directory (nodejs). */
  public static synchronized Path docsCopy() throws IOException {
    if (docs == null) {
      Path dst = newDir("doc-").resolve("doc");
      run(List.of("cp", "-a", "/usr/share/doc", dst.toString()));
      deleteQuietly(dst.resolve("nodejs"));
      docs = dst;
    }
    return docs;
  }

  /** GNU tar of a directory's contents ("./" first), with xattrs, into {@code tar}. */
  public static Path gnuTar(Path dir, Path tar, String... extra) throws IOException {
    List<String> cmd = new ArrayList<>(List.of("tar", "--xattrs", "--xattrs-include=*"));
    cmd.addAll(List.of(extra));
    cmd.addAll(List.of("-C", dir.toString(), "-cf", tar.toString(), "."));
    run(cmd);
    return tar;
  }

  public static void run(List<String> cmd) throws IOException {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException(String.join(" ", cmd) + ": timed out");
      }
      if (p.exitValue() != 0) {
        throw new IOException(String.join(" ", cmd) + ": exit " + p.exitValue() + ": " + out);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }

  public static void deleteQuietly(Path p) {
    if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      s.sorted(Comparator.reverseOrder()).forEach(x -> {
        try {
          Files.delete(x);
        } catch (IOException ignored) {
          // best effort at exit
        }
      });
    } catch (IOException | RuntimeException ignored) {
      // best effort at exit
    }
  }
}
