package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import io.lazypull.erofs.format.XattrEntry;
import io.lazypull.erofs.format.XattrIbodyHeader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Inline xattr bodies: the full name is split into a prefix index and a suffix
 * ({@link Erofs#XATTR_PREFIXES}); shared xattrs are never written (they only save space).
 */
final class Xattrs {
  private static final int MAX_ICOUNT = 0xFFFF;

  private Xattrs() {}

  /** The prefix index for a full name, or 0 if no EROFS prefix matches. */
  static int prefixIndex(String name) {
    for (int i = 1; i < Erofs.XATTR_PREFIXES.length; i++) {
      String prefix = Erofs.XATTR_PREFIXES[i];
      boolean wholeName = i == Erofs.XATTR_INDEX_POSIX_ACL_ACCESS || i == Erofs.XATTR_INDEX_POSIX_ACL_DEFAULT;
      if (wholeName ? name.equals(prefix) : name.startsWith(prefix) && name.length() > prefix.length()) {
        return i;
      }
    }
    return 0;
  }

  /**
   * Encodes the inline body (header + entries), or an empty array if there are no xattrs. The
   * body is never a bare 12-byte header: the kernel rejects i_xattr_icount 1.
   */
  static byte[] encodeIbody(Map<String, byte[]> xattrs, String origin) throws IOException {
    if (xattrs.isEmpty()) {
      return new byte[0];
    }
    int size = XattrIbodyHeader.SIZE;
    for (Map.Entry<String, byte[]> x : xattrs.entrySet()) {
      XattrEntry e = entryOf(x.getKey(), x.getValue(), origin);
      size += e.size();
    }
    if (XattrIbodyHeader.icount(size) > MAX_ICOUNT) {
      throw new IOException(origin + ": xattrs take " + size + " bytes, more than an inode can hold");
    }
    ByteBuffer b = Erofs.le(ByteBuffer.allocate(size));
    new XattrIbodyHeader().write(b);
    for (Map.Entry<String, byte[]> x : xattrs.entrySet()) {
      entryOf(x.getKey(), x.getValue(), origin).write(b);
    }
    return b.array();
  }

  private static XattrEntry entryOf(String name, byte[] value, String origin) throws IOException {
    int index = prefixIndex(name);
    if (index == 0) {
      throw new IOException(origin + ": xattr '" + name + "' has no EROFS name prefix"
          + " (user., trusted., security., lustre., system.posix_acl_*)");
    }
    byte[] suffix = name.substring(
        index == Erofs.XATTR_INDEX_POSIX_ACL_ACCESS || index == Erofs.XATTR_INDEX_POSIX_ACL_DEFAULT
            ? name.length() : Erofs.XATTR_PREFIXES[index].length())
        .getBytes(StandardCharsets.UTF_8);
    if (suffix.length > 255) {
      throw new IOException(origin + ": xattr name '" + name + "' is too long");
    }
    if (value.length > 0xFFFF) {
      throw new IOException(origin + ": xattr '" + name + "' value is " + value.length + " bytes (max 65535)");
    }
    XattrEntry e = new XattrEntry();
    e.nameIndex = index;
    e.nameLen = suffix.length;
    e.name = suffix;
    e.valueSize = value.length;
    e.value = value;
    return e;
  }
}
