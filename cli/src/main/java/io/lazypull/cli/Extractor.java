package io.lazypull.cli;

import io.lazypull.erofs.ErofsImage;
import io.lazypull.erofs.format.Erofs;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
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
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Writes an image's tree into a directory. Entries are created in walk order (parents first),
 * then attributes are applied per inode in an order that keeps them: owner first (chown
 * clears setuid bits and security.capability), then mode, then xattrs; mtimes last and
 * children before parents (creating an entry touches its directory).
 *
 * <p>Symlinks, devices, fifos and sockets get their mtimes through {@code touch -h}
 * (utimensat with AT_SYMLINK_NOFOLLOW): the JDK's setTimes opens the file, which blocks on a
 * fifo, and only has microsecond lutimes for symlinks. Calls are batched per distinct time.
 */
final class Extractor {
  private static final int BUFFER = 1 << 20;

  private final ErofsImage image;
  private final Path root;

  record Stats(long entries, long bytes) {}

  Extractor(ErofsImage image, Path root) {
    this.image = image;
    this.root = root.toAbsolutePath();
  }

  Stats extract() throws IOException {
    Files.createDirectories(root);
    List<Path> paths = new ArrayList<>();
    List<ErofsImage.Node> nodes = new ArrayList<>();
    Map<Long, Path> firstPathOfNid = new HashMap<>();
    long[] bytes = {0};
    image.walk((path, n) -> {
      Path p = path.equals("/") ? root : root.resolve(path.substring(1));
      Path first = n.isDirectory() ? null : firstPathOfNid.putIfAbsent(n.nid(), p);
      if (first != null) {
        Files.createLink(p, first); // a hard link: the inode's attributes are set once
        return;
      }
      bytes[0] += create(p, n);
      paths.add(p);
      nodes.add(n);
    });
    for (int i = 0; i < paths.size(); i++) {
      applyAttributes(paths.get(i), nodes.get(i));
    }
    Map<Instant, List<String>> touchLater = new LinkedHashMap<>();
    for (int i = paths.size() - 1; i >= 0; i--) {
      ErofsImage.Node n = nodes.get(i);
      Instant t = n.mtimeInstant();
      if (n.isDirectory() || n.isRegular()) {
        Files.getFileAttributeView(paths.get(i), BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
            .setTimes(FileTime.from(t), FileTime.from(t), null);
      } else {
        touchLater.computeIfAbsent(t, k -> new ArrayList<>()).add(paths.get(i).toString());
      }
    }
    for (Map.Entry<Instant, List<String>> e : touchLater.entrySet()) {
      touch(e.getKey(), e.getValue());
    }
    return new Stats(paths.size(), bytes[0]);
  }

  /** Creates the entry (contents included); returns the bytes written. */
  private long create(Path p, ErofsImage.Node n) throws IOException {
    switch (n.mode() & Erofs.S_IFMT) {
      case Erofs.S_IFDIR:
        if (!Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
          Files.createDirectory(p);
        }
        return 0;
      case Erofs.S_IFREG:
        return writeFile(p, n);
      case Erofs.S_IFLNK:
        Files.createSymbolicLink(p, Path.of(new String(image.readlink(n), StandardCharsets.UTF_8)));
        return 0;
      default: // char, block, fifo, socket
        Posix.mknod(p.toString(), n.mode(), n.rdevMajor(), n.rdevMinor());
        return 0;
    }
  }

  /**
   * Streams the content; all-zero blocks are skipped so holes stay holes. A file whose content
   * cannot be read whole (a data blob that fails verification) is removed, not left short.
   */
  private long writeFile(Path p, ErofsImage.Node n) throws IOException {
    FileChannel out = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    try (out) {
      ByteBuffer buf = ByteBuffer.allocate(BUFFER);
      for (long pos = 0; pos < n.size(); ) {
        buf.clear();
        int len = image.read(n, pos, buf);
        buf.flip();
        if (!isZero(buf)) {
          while (buf.hasRemaining()) {
            out.write(buf, pos + buf.position());
          }
        }
        pos += len;
      }
      out.truncate(n.size());
      if (out.size() < n.size()) {
        out.write(ByteBuffer.allocate(1), n.size() - 1);
      }
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(p);
      throw e;
    }
    return n.size();
  }

  private static boolean isZero(ByteBuffer b) {
    for (int i = b.position(); i < b.limit(); i++) {
      if (b.get(i) != 0) {
        return false;
      }
    }
    return true;
  }

  private void applyAttributes(Path p, ErofsImage.Node n) throws IOException {
    Files.setAttribute(p, "unix:uid", (int) n.uid(), LinkOption.NOFOLLOW_LINKS);
    Files.setAttribute(p, "unix:gid", (int) n.gid(), LinkOption.NOFOLLOW_LINKS);
    if (!n.isSymlink()) {
      Posix.chmod(p.toString(), n.mode() & 07777);
    }
    for (Map.Entry<String, byte[]> x : image.xattrs(n).entrySet()) {
      Posix.setXattr(p.toString(), x.getKey(), x.getValue());
    }
  }

  private static void touch(Instant t, List<String> files) throws IOException {
    for (int from = 0; from < files.size(); from += 500) {
      List<String> cmd = new ArrayList<>(List.of("touch", "-h", "-d",
          String.format("@%d.%09d", t.getEpochSecond(), t.getNano()), "--"));
      cmd.addAll(files.subList(from, Math.min(files.size(), from + 500)));
      try {
        Process proc = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!proc.waitFor(60, TimeUnit.SECONDS) || proc.exitValue() != 0) {
          throw new IOException("touch -h failed: " + out.strip());
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while setting mtimes", e);
      }
    }
  }
}
