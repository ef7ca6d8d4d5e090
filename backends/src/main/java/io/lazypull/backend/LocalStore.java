package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.security.MessageDigest;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Blobs on the local file system, in one of three layouts chosen by what the path is:
 *
 * <pre>
 * DIRECTORY    dir/&lt;hex&gt;                       a plain directory of blobs
 * OCI_LAYOUT   dir/oci-layout                    an OCI image layout (the file marks it)
 *              dir/blobs/sha256/&lt;hex&gt;
 * SINGLE_FILE  layer.tar                         one file, the blob named by its own sha256
 * </pre>
 *
 * A single file's sha256 is computed once and remembered in memory and in the extended
 * attribute {@code user.lazypull.sha256} ("v1 SIZE MTIME_NS HEX"), trusted while size and mtime
 * are unchanged. Reads are positional; put writes a temporary file beside the target, checks its
 * hash, and renames it into place.
 */
final class LocalStore implements Store {
  private static final Logger log = LoggerFactory.getLogger(LocalStore.class);
  /** The xattr name without the "user." namespace, which UserDefinedFileAttributeView adds. */
  static final String XATTR = "lazypull.sha256";
  private static final int BUFFER = 1 << 20;
  private static final int MAX_TAG_SIZE = 64 << 10;
  private static final String REF_NAME = "org.opencontainers.image.ref.name";
  private static final ConcurrentHashMap<Path, String> DIGEST_CACHE = new ConcurrentHashMap<>();

  enum Layout { DIRECTORY, OCI_LAYOUT, SINGLE_FILE }

  private final Path root;
  private final Layout layout;
  private final String description;
  private volatile String singleHex; // SINGLE_FILE: computed on first use

  private LocalStore(Path root, Layout layout) {
    this.root = root;
    this.layout = layout;
    this.description = "file://" + root;
  }

  static LocalStore open(Path path) throws BackendException {
    Path root = path.toAbsolutePath().normalize();
    if (Files.isDirectory(root)) {
      return new LocalStore(root,
          Files.isRegularFile(root.resolve("oci-layout")) ? Layout.OCI_LAYOUT : Layout.DIRECTORY);
    }
    if (Files.isRegularFile(root)) {
      return new LocalStore(root, Layout.SINGLE_FILE);
    }
    throw new BackendException(Kind.PERMANENT, "file://" + root, "open", null, 0,
        "no such directory or file", null);
  }

  Layout layout() {
    return layout;
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public boolean remote() {
    return false;
  }

  @Override
  public long size(String hex, Call call) throws IOException {
    Path p = pathOf(hex, "size");
    try {
      return Files.readAttributes(p, BasicFileAttributes.class).size();
    } catch (IOException e) {
      throw failure("size", hex, e);
    }
  }

  @Override
  public int read(String hex, long offset, ByteBuffer dst, Call call) throws IOException {
    Path p = pathOf(hex, "read");
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
      long size = ch.size();
      if (offset >= size) {
        return -1;
      }
      int want = (int) Math.min(dst.remaining(), size - offset);
      int limit = dst.limit();
      dst.limit(dst.position() + want);
      int n = 0;
      try {
        while (dst.hasRemaining()) {
          int r = ch.read(dst, offset + n);
          if (r < 0) {
            break;
          }
          n += r;
        }
      } finally {
        dst.limit(limit);
      }
      return n;
    } catch (IOException e) {
      throw failure("read", hex, e);
    }
  }

  @Override
  public void transferTo(String hex, long offset, long end, WritableByteChannel out, Call call)
      throws IOException {
    Path p = pathOf(hex, "transfer");
    FileChannel ch;
    try {
      ch = FileChannel.open(p, StandardOpenOption.READ);
    } catch (IOException e) {
      throw failure("transfer", hex, e);
    }
    try (ch) {
      ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER);
      long pos = offset;
      while (pos < end) {
        buf.clear().limit((int) Math.min(buf.capacity(), end - pos));
        int r = ch.read(buf, pos);
        if (r < 0) {
          return;
        }
        pos += r;
        buf.flip();
        while (buf.hasRemaining()) {
          out.write(buf);
        }
      }
    }
  }

  @Override
  public void put(String hex, Path file, long size, Call call) throws IOException {
    if (layout == Layout.SINGLE_FILE) {
      throw new BackendException(Kind.PERMANENT, description, "put", hex, 0,
          "read-only: this backend is a single file", null);
    }
    Path target = pathOf(hex, "put");
    Path tmp = null;
    try {
      Files.createDirectories(target.getParent());
      tmp = Files.createTempFile(target.getParent(), ".put-" + hex.substring(0, 12) + "-", ".tmp");
      MessageDigest md = Digests.newSha256();
      try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ);
          FileChannel out = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
        ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER);
        while (in.read(buf) >= 0) {
          buf.flip();
          md.update(buf.duplicate());
          while (buf.hasRemaining()) {
            out.write(buf);
          }
          buf.clear();
        }
        out.force(true);
      }
      String actual = Digests.hex(md);
      if (!actual.equals(hex)) {
        throw new BackendException(Kind.PERMANENT, description, "put", hex, 0,
            file + " changed while it was being stored (its sha256 is now " + actual + ")", null);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
    } catch (BackendException e) {
      throw e;
    } catch (IOException e) {
      throw failure("put", hex, e);
    } finally {
      if (tmp != null) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  /**
   * A directory: the file refs/NAME:TAG holding a descriptor (as in S3). An OCI layout: the
   * first index.json entry whose org.opencontainers.image.ref.name is the tag.
   */
  @Override
  public byte[] getTag(String tag, Call call) throws IOException {
    String op = "tag " + tag;
    switch (layout) {
      case DIRECTORY:
        try {
          if (Files.size(root.resolve("refs").resolve(tag)) > MAX_TAG_SIZE) {
            throw new BackendException(Kind.PERMANENT, description, op, null, 0,
                "larger than " + MAX_TAG_SIZE + " bytes: not a descriptor", null);
          }
          return Files.readAllBytes(root.resolve("refs").resolve(tag));
        } catch (BackendException e) {
          throw e;
        } catch (IOException e) {
          throw failure(op, null, e);
        }
      case OCI_LAYOUT:
        JsonNode index;
        try {
          index = Json.MAPPER.readTree(root.resolve("index.json").toFile());
        } catch (IOException e) {
          throw e instanceof NoSuchFileException ? failure(op, null, e)
              : new BackendException(Kind.PERMANENT, description, op, null, 0,
                  "index.json is not valid JSON: " + e.getMessage().lines().findFirst().orElse(""),
                  null);
        }
        for (JsonNode d : index.path("manifests")) {
          if (tag.equals(d.path("annotations").path(REF_NAME).asText(null))) {
            return Json.MAPPER.writeValueAsBytes(d);
          }
        }
        throw new BackendException(Kind.NOT_FOUND, description, op, null, 0,
            "no manifest in index.json has " + REF_NAME + " '" + tag + "'", null);
      default:
        return Store.super.getTag(tag, call);
    }
  }

  @Override
  public void putTag(String tag, byte[] descriptor, Call call) throws IOException {
    if (layout != Layout.DIRECTORY) {
      Store.super.putTag(tag, descriptor, call);
      return;
    }
    Path target = root.resolve("refs").resolve(tag);
    Path tmp = null;
    try {
      Files.createDirectories(target.getParent());
      tmp = Files.createTempFile(target.getParent(), ".tag-", ".tmp");
      Files.write(tmp, descriptor);
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw failure("put tag " + tag, null, e);
    } finally {
      if (tmp != null) {
        Files.deleteIfExists(tmp);
      }
    }
  }

  @Override
  public void close() {}

  /** Where blob {@code hex} lives; for a single file, the file when it is that blob. */
  private Path pathOf(String hex, String op) throws IOException {
    switch (layout) {
      case DIRECTORY:
        return root.resolve(hex);
      case OCI_LAYOUT:
        return root.resolve("blobs").resolve("sha256").resolve(hex);
      case SINGLE_FILE:
        if (hex.equals(singleHex())) {
          return root;
        }
        throw new BackendException(Kind.NOT_FOUND, description, op, hex, 0,
            "not found (this backend is the single blob sha256:" + singleHex() + ")", null);
      default:
        throw new AssertionError(layout);
    }
  }

  private String singleHex() throws IOException {
    String h = singleHex;
    if (h == null) {
      synchronized (this) {
        h = singleHex;
        if (h == null) {
          try {
            h = cachedSha256(root);
          } catch (IOException e) {
            throw failure("hash", null, e);
          }
          singleHex = h;
        }
      }
    }
    return h;
  }

  /**
   * The sha256 of a file, from memory or its xattr when size and mtime still match; computed
   * (and stored in both) otherwise.
   */
  static String cachedSha256(Path file) throws IOException {
    BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
    String key = "v1 " + a.size() + " " + a.lastModifiedTime().to(TimeUnit.NANOSECONDS) + " ";
    String mem = DIGEST_CACHE.get(file);
    if (mem != null && mem.startsWith(key)) {
      return mem.substring(key.length());
    }
    UserDefinedFileAttributeView xattrs =
        Files.getFileAttributeView(file, UserDefinedFileAttributeView.class);
    String stored = readXattr(xattrs);
    String hex;
    if (stored != null && stored.startsWith(key) && Digests.isHex(stored.substring(key.length()))) {
      hex = stored.substring(key.length());
    } else {
      long t0 = System.nanoTime();
      hex = Digests.sha256Hex(file);
      log.debug("sha256 of {} ({} bytes) took {} ms", file, a.size(),
          (System.nanoTime() - t0) / 1_000_000);
      writeXattr(xattrs, key + hex, file);
    }
    DIGEST_CACHE.put(file, key + hex);
    return hex;
  }

  private static String readXattr(UserDefinedFileAttributeView xattrs) {
    if (xattrs == null) {
      return null;
    }
    try {
      if (!xattrs.list().contains(XATTR)) {
        return null;
      }
      ByteBuffer buf = ByteBuffer.allocate(xattrs.size(XATTR));
      xattrs.read(XATTR, buf);
      return new String(buf.array(), 0, buf.position(), StandardCharsets.US_ASCII);
    } catch (IOException | UnsupportedOperationException e) {
      return null;
    }
  }

  private static void writeXattr(UserDefinedFileAttributeView xattrs, String value, Path file) {
    if (xattrs == null) {
      return;
    }
    try {
      xattrs.write(XATTR, ByteBuffer.wrap(value.getBytes(StandardCharsets.US_ASCII)));
    } catch (IOException | UnsupportedOperationException e) {
      // Read-only file or a file system without user xattrs: the memory cache still holds it.
      log.debug("cannot cache the sha256 of {} in an xattr: {}", file, e.toString());
    }
  }

  private BackendException failure(String op, String hex, IOException e) {
    if (e instanceof NoSuchFileException) {
      return new BackendException(Kind.NOT_FOUND, description, op, hex, 0, "not found", e);
    }
    String detail;
    if (e instanceof AccessDeniedException x) {
      detail = "permission denied: " + x.getFile();
    } else if (e instanceof FileSystemException x && x.getReason() != null) {
      detail = x.getReason() + ": " + x.getFile();
    } else {
      detail = ManagedBackend.describe(e);
    }
    return new BackendException(Kind.PERMANENT, description, op, hex, 0, detail, e);
  }
}
