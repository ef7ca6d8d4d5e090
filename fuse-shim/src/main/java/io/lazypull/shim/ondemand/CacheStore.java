package io.lazypull.shim.ondemand;

import io.lazypull.protocol.CacheFiles;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The persistent cache files: {@code <cache-dir>/<volume>/<cookie>}, sparse, sized
 * {@code round_up(size, 4096)}, with the object size in the xattr {@value #SIZE_XATTR}. What is
 * cached is exactly what SEEK_DATA finds, so the cache survives restarts of the shim and of
 * the daemon. The coherency check is cachefiles': an object opened with a different size
 * discards its old data.
 *
 * <p>Names are escaped unless plain ({@code [A-Za-z0-9._:,+=@-]}, not starting with a dot):
 * other bytes become {@code %XX}; an escaped name longer than 255 bytes becomes
 * {@code %%<sha256>} (such files are used but not listed).
 */
public final class CacheStore implements AutoCloseable {
  public static final String SIZE_XATTR = "user.lazypull.size";
  private static final Logger log = LoggerFactory.getLogger(CacheStore.class);

  /** What {@link #prepare} did with a cache file. */
  public enum Coherency {
    /** A new (or empty, unmarked) file. */
    CREATED,
    /** The recorded size matched: its cached data is kept. */
    KEPT,
    /** The recorded size differed: the old data was thrown away. */
    DISCARDED
  }

  private final Path root;
  private final Map<Path, StoreFile> files = new ConcurrentHashMap<>();

  /**
   * Opens (creating it if needed) the cache directory and checks that its filesystem keeps
   * user xattrs, which the coherency check needs.
   */
  public CacheStore(Path root) throws IOException {
    this.root = Files.createDirectories(root).toAbsolutePath();
    Path probe = this.root.resolve(".xattr-probe");
    Files.deleteIfExists(probe);
    Files.createFile(probe);
    try {
      Posix.setXattr(probe.toString(), SIZE_XATTR, "0".getBytes(StandardCharsets.US_ASCII));
    } catch (ErrnoException e) {
      throw new IOException("cache dir " + root + " cannot keep the " + SIZE_XATTR
          + " xattr the coherency check needs: " + e.getMessage(), e);
    } finally {
      Files.deleteIfExists(probe);
    }
  }

  public Path root() {
    return root;
  }

  /** The cache file of (volume, cookie), opened on first use and kept open. */
  public StoreFile file(String volumeKey, String cookieKey) throws ErrnoException {
    Path path = root.resolve(escape(volumeKey)).resolve(escape(cookieKey));
    StoreFile f = files.get(path);
    if (f != null) {
      return f;
    }
    synchronized (files) {
      f = files.get(path);
      if (f == null) {
        try {
          Files.createDirectories(path.getParent());
        } catch (IOException e) {
          throw new ErrnoException("mkdir", Errno.EIO, path.getParent() + ": " + e.getMessage());
        }
        int fd = Posix.open(path.toString(), Posix.O_RDWR | Posix.O_CREAT | Posix.O_NOFOLLOW, 0600);
        f = new StoreFile(path, fd);
        files.put(path, f);
      }
      return f;
    }
  }

  /**
   * Closes and deletes the cache file of (volume, cookie); false if it could not be deleted.
   * Only for a blob whose object is forgotten ({@link OndemandCache#forget}).
   */
  boolean remove(String volumeKey, String cookieKey) {
    Path path = root.resolve(escape(volumeKey)).resolve(escape(cookieKey));
    synchronized (files) {
      StoreFile f = files.remove(path);
      if (f != null) {
        Posix.closeQuietly(f.fd());
      }
      try {
        Files.deleteIfExists(path);
        return true;
      } catch (IOException e) {
        log.warn("removing {}: {}", path, e.getMessage());
        return false;
      }
    }
  }

  /**
   * Uses {@code fd}, open O_RDWR on the cache file {@code name} ({@code volume/cookie}, as file
   * names here), as that file's fd instead of opening it: a fanotify relay taking over from a
   * dead one gets the fds its predecessor opened before marking the files (an fd opened after
   * the mark would make the daemon's writes through it wait for pre-content events). False if
   * {@code name} is not a cache file's name here or the file is open already (then {@code fd}
   * is not used).
   */
  public boolean adopt(String name, int fd) {
    Path rel = Path.of(name).normalize();
    if (rel.isAbsolute() || rel.getNameCount() != 2 || rel.getName(0).toString().startsWith(".")
        || rel.getName(0).toString().equals("..")) {
      return false;
    }
    Path path = root.resolve(rel);
    synchronized (files) {
      if (files.containsKey(path)) {
        return false;
      }
      files.put(path, new StoreFile(path, fd));
      return true;
    }
  }

  /**
   * The coherency check of a successful copen: keeps the file if its recorded size is
   * {@code size}, else empties it; then sizes it {@code round_up(size, 4096)} and records
   * {@code size}.
   */
  public Coherency prepare(StoreFile f, long size) throws ErrnoException {
    int fd = f.fd();
    long want = roundUp(size);
    byte[] recorded = Posix.fgetXattr(fd, SIZE_XATTR);
    long length = Posix.lseek(fd, 0, Posix.SEEK_END);
    Coherency c;
    if (recorded != null && parse(recorded) == size) {
      c = Coherency.KEPT;
    } else {
      c = recorded == null && length == 0 ? Coherency.CREATED : Coherency.DISCARDED;
      if (c == Coherency.DISCARDED) {
        log.info("cache file {}: recorded size {} != {}: discarding its data", f,
            recorded == null ? "none" : new String(recorded, StandardCharsets.US_ASCII), size);
      }
      Posix.ftruncate(fd, 0);
      length = 0;
    }
    if (length != want) {
      Posix.ftruncate(fd, want);
    }
    if (c != Coherency.KEPT) {
      Posix.fsetXattr(fd, SIZE_XATTR, Long.toString(size).getBytes(StandardCharsets.US_ASCII));
    }
    return c;
  }

  /** The volumes that have a directory here (unescaped), for listings. */
  public List<String> volumes() {
    return list(root, true);
  }

  /**
   * The cookies of {@code volumeKey} that have a cache file here (unescaped): only files a copen
   * sized (a lookup the daemon failed leaves an empty file without the size xattr).
   */
  public List<String> cookies(String volumeKey) {
    return list(root.resolve(escape(volumeKey)), false);
  }

  private static List<String> list(Path dir, boolean dirs) {
    List<String> out = new ArrayList<>();
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path p : s) {
        String name = unescape(p.getFileName().toString());
        if (name == null || Files.isDirectory(p) != dirs) {
          continue;
        }
        try {
          if (dirs || Posix.getXattr(p.toString(), SIZE_XATTR) != null) {
            out.add(name);
          }
        } catch (ErrnoException e) {
          // vanished or unreadable: not listed
        }
      }
    } catch (IOException e) {
      // no directory yet: nothing cached
    }
    return out;
  }

  @Override
  public void close() {
    synchronized (files) {
      for (StoreFile f : files.values()) {
        Posix.closeQuietly(f.fd());
      }
      files.clear();
    }
  }

  public static long roundUp(long size) {
    return (size + CacheFiles.PAGE_SIZE - 1) & -(long) CacheFiles.PAGE_SIZE;
  }

  private static long parse(byte[] value) {
    try {
      return Long.parseLong(new String(value, StandardCharsets.US_ASCII));
    } catch (NumberFormatException e) {
      return Long.MIN_VALUE;
    }
  }

  private static boolean plain(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || "._:,+=@-".indexOf(c) >= 0;
  }

  /** A key (ISO-8859-1 string, one char per byte) as a file name. */
  public static String escape(String key) {
    StringBuilder b = new StringBuilder(key.length() + 8);
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (plain(c) && !(i == 0 && c == '.')) {
        b.append(c);
      } else {
        b.append('%').append(String.format("%02X", c & 0xff));
      }
    }
    if (b.length() == 0) {
      b.append("%");
    }
    if (b.length() > 255) {
      try {
        byte[] d = MessageDigest.getInstance("SHA-256").digest(key.getBytes(StandardCharsets.ISO_8859_1));
        return "%%" + HexFormat.of().formatHex(d);
      } catch (NoSuchAlgorithmException e) {
        throw new AssertionError(e);
      }
    }
    return b.toString();
  }

  /** The key a file name stands for, or null if it is not one of ours (or is hashed). */
  public static String unescape(String name) {
    if (name.equals("%")) {
      return "";
    }
    if (name.startsWith("%%") || name.startsWith(".")) {
      return null;
    }
    StringBuilder b = new StringBuilder(name.length());
    for (int i = 0; i < name.length(); i++) {
      char c = name.charAt(i);
      if (c == '%') {
        if (i + 2 >= name.length()) {
          return null;
        }
        try {
          b.append((char) Integer.parseInt(name.substring(i + 1, i + 3), 16));
        } catch (NumberFormatException e) {
          return null;
        }
        i += 2;
      } else if (plain(c)) {
        b.append(c);
      } else {
        return null;
      }
    }
    return b.toString();
  }
}
