package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/** Shared checks of built images: fsck.erofs, kernel mounts, reader vs kernel listings. */
final class ImageChecks {
  /** Files larger than this are left out of the listing's content column (huge sparse files). */
  private static final long LISTING_CONTENT_LIMIT = 64L << 20;

  private ImageChecks() {}

  /** The image's extra devices: its data blob, if any. */
  static List<Path> devices(MkfsResult r) {
    return r.dataBlob().map(b -> List.of(b.path())).orElse(List.of());
  }

  /** Runs fsck.erofs 1.5 (4 KiB images only) and asserts it accepts the image. */
  static void fsck(Path image, List<Path> devices) throws IOException {
    List<String> cmd = new ArrayList<>(List.of("fsck.erofs"));
    for (Path d : devices) {
      cmd.add("--device=" + d.toAbsolutePath());
    }
    cmd.add(image.toAbsolutePath().toString());
    TestTrees.run(cmd);
  }

  /** A true file-backed kernel mount, unmounted (and its directory removed) on close. */
  static final class Mounted implements AutoCloseable {
    final Path dir;

    Mounted(Path image, List<Path> devices) throws IOException {
      dir = TestTrees.newDir("mnt-");
      try {
        Mounts.mountErofs(image, dir, devices);
      } catch (IOException e) {
        Files.deleteIfExists(dir);
        throw e;
      }
    }

    @Override
    public void close() throws IOException {
      Mounts.umount(dir, 0);
      Files.deleteIfExists(dir);
    }
  }

  /** Mounts the image, compares it with the source tree, and compares reader and kernel. */
  static void mountAndCompare(MkfsResult r, Path source, TreeDiff.Options options) throws IOException {
    try (Mounted m = new Mounted(r.image(), devices(r))) {
      TreeDiff.assertSame(source, m.dir, options);
      assertReaderMatchesKernel(r.image(), devices(r), m.dir);
    }
  }

  /** The reader's view of every entry equals the kernel's (st_ino = NID), content included. */
  static void assertReaderMatchesKernel(Path image, List<Path> devices, Path mounted) throws IOException {
    List<ImageSource> devs = new ArrayList<>();
    try (ImageSource meta = ImageSource.of(image)) {
      for (Path d : devices) {
        devs.add(ImageSource.of(d));
      }
      ErofsImage img = ErofsImage.open(meta, devs);
      List<String> reader = new ArrayList<>();
      img.walk((path, n) -> reader.add(readerLine(img, path, n)));
      List<String> kernel = new ArrayList<>();
      try (Stream<Path> s = Files.walk(mounted)) {
        for (Path p : (Iterable<Path>) s::iterator) {
          String rel = "/" + mounted.relativize(p);
          kernel.add(kernelLine(rel.equals("/") ? "/" : rel, p));
        }
      }
      reader.sort(null);
      kernel.sort(null);
      assertThat(reader).containsExactlyElementsOf(kernel);
    } finally {
      for (ImageSource d : devs) {
        d.close();
      }
    }
  }

  private static String readerLine(ErofsImage img, String path, ErofsImage.Node n) throws IOException {
    StringBuilder b = new StringBuilder(path);
    b.append(" mode=").append(Integer.toOctalString(n.mode())).append(" uid=").append(n.uid())
        .append(" gid=").append(n.gid()).append(" size=").append(n.size())
        .append(" nlink=").append(n.nlink()).append(" ino=").append(n.nid())
        .append(" mtime=").append(n.mtimeInstant());
    if (n.isDevice()) {
      b.append(" rdev=").append(n.rdevMajor()).append(':').append(n.rdevMinor());
    }
    if (n.isSymlink()) {
      b.append(" -> ").append(new String(img.readlink(n), StandardCharsets.UTF_8));
    }
    if (n.isRegular() && n.size() <= LISTING_CONTENT_LIMIT) {
      MessageDigest md = sha256();
      ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
      for (long pos = 0; pos < n.size(); pos += buf.capacity()) {
        buf.clear();
        img.read(n, pos, buf);
        buf.flip();
        if (!Zeros.isAllZero(buf)) {
          md.update(ByteBuffer.allocate(8).putLong(pos).array());
          md.update(buf);
        }
      }
      b.append(" content=").append(HexFormat.of().formatHex(md.digest()));
    }
    Map<String, String> x = new TreeMap<>();
    img.xattrs(n).forEach((k, v) -> x.put(k, HexFormat.of().formatHex(v)));
    return b.append(" xattrs=").append(x).toString();
  }

  private static String kernelLine(String path, Path p) throws IOException {
    Map<String, Object> a = Files.readAttributes(p, "unix:*", LinkOption.NOFOLLOW_LINKS);
    int mode = (Integer) a.get("mode");
    StringBuilder b = new StringBuilder(path);
    b.append(" mode=").append(Integer.toOctalString(mode)).append(" uid=").append(((Integer) a.get("uid")) & 0xFFFFFFFFL)
        .append(" gid=").append(((Integer) a.get("gid")) & 0xFFFFFFFFL).append(" size=").append(a.get("size"))
        .append(" nlink=").append(a.get("nlink")).append(" ino=").append(a.get("ino"))
        .append(" mtime=").append(((FileTime) a.get("lastModifiedTime")).toInstant());
    int type = mode & 0170000;
    if (type == 0020000 || type == 0060000) {
      long rdev = (Long) a.get("rdev");
      b.append(" rdev=").append(((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL)).append(':')
          .append((rdev & 0xff) | ((rdev >>> 12) & ~0xffL));
    }
    if (type == 0120000) {
      b.append(" -> ").append(Files.readSymbolicLink(p));
    }
    if (type == 0100000 && (Long) a.get("size") <= LISTING_CONTENT_LIMIT) {
      b.append(" content=").append(TreeDiff.contentDigest(p));
    }
    Map<String, String> x = new TreeMap<>();
    for (String name : Posix.listXattrs(p.toString())) {
      x.put(name, HexFormat.of().formatHex(Posix.getXattr(p.toString(), name)));
    }
    return b.append(" xattrs=").append(x).toString();
  }

  static MessageDigest sha256() {
    return PieceDigests.sha256();
  }
}
