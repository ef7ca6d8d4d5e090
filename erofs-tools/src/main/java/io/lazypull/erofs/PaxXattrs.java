package io.lazypull.erofs;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * Recovers a tar member's {@code SCHILY.xattr.*} records byte-exactly. commons-compress parses
 * PAX values as UTF-8 strings (a binary value such as {@code security.capability} loses every
 * byte >= 0x80) and drops records with an empty value (POSIX "unset" semantics), which loses
 * {@code trusted.overlay.origin=""}. GNU tar writes raw bytes in both cases.
 *
 * <p>So, for each member, the headers between the end of the previous member's data and this
 * member's own header are walked (512-byte headers: typeflag at byte 156, size at 124-135 in
 * octal or base-256) and the records of its 'x' header are split ("LEN KEY=VALUE\n"). Any
 * inconsistency returns null and the caller keeps commons-compress's values.
 */
final class PaxXattrs {
  private static final int BLOCK = 512;
  private static final String PREFIX = "SCHILY.xattr.";
  private static final int MAX_PAX = 16 << 20;

  private PaxXattrs() {}

  /**
   * The xattrs of the member whose data starts at {@code dataOffset}; {@code headersStart} is
   * where its first header (PAX, GNU long name, or its own) begins. Null if the region does not
   * parse as expected.
   */
  static Map<String, byte[]> read(FileChannel tar, long headersStart, long dataOffset) throws IOException {
    long ownHeader = dataOffset - BLOCK;
    if (headersStart < 0 || headersStart > ownHeader) {
      return null;
    }
    Map<String, byte[]> found = null;
    ByteBuffer header = ByteBuffer.allocate(BLOCK);
    for (long pos = headersStart; pos < ownHeader; ) {
      header.clear();
      if (readFully(tar, header, pos) < BLOCK) {
        return null;
      }
      byte[] h = header.array();
      long size = parseSize(h);
      if (size < 0 || pos + BLOCK + size > ownHeader) {
        return null;
      }
      if (h[156] == 'x') {
        if (size > MAX_PAX) {
          return null;
        }
        ByteBuffer data = ByteBuffer.allocate((int) size);
        if (readFully(tar, data, pos + BLOCK) < size) {
          return null;
        }
        found = parseRecords(data.array());
        if (found == null) {
          return null;
        }
      }
      pos += BLOCK + (size + BLOCK - 1) / BLOCK * BLOCK;
    }
    return found == null ? new TreeMap<>() : found;
  }

  private static Map<String, byte[]> parseRecords(byte[] d) {
    Map<String, byte[]> out = new TreeMap<>();
    int i = 0;
    while (i < d.length) {
      if (d[i] == 0) {
        break; // padding
      }
      int sp = i;
      long len = 0;
      while (sp < d.length && d[sp] >= '0' && d[sp] <= '9' && len < Integer.MAX_VALUE) {
        len = len * 10 + (d[sp] - '0');
        sp++;
      }
      if (sp >= d.length || d[sp] != ' ' || len <= sp - i || i + len > d.length || d[(int) (i + len - 1)] != '\n') {
        return null;
      }
      int end = (int) (i + len - 1);
      int eq = sp + 1;
      while (eq < end && d[eq] != '=') {
        eq++;
      }
      if (eq >= end && d[eq] != '=') {
        return null;
      }
      String key = new String(d, sp + 1, eq - sp - 1, StandardCharsets.UTF_8);
      if (key.startsWith(PREFIX)) {
        out.put(key.substring(PREFIX.length()), Arrays.copyOfRange(d, eq + 1, end));
      }
      i += (int) len;
    }
    return out;
  }

  /** The size field: octal ASCII, or base-256 when the top bit of the first byte is set. */
  private static long parseSize(byte[] h) {
    if ((h[124] & 0x80) != 0) {
      long v = 0;
      for (int i = 125; i < 136; i++) {
        v = (v << 8) | (h[i] & 0xff);
      }
      return v;
    }
    long v = 0;
    boolean digits = false;
    for (int i = 124; i < 136; i++) {
      byte c = h[i];
      if (c == 0 || c == ' ') {
        if (digits) {
          break;
        }
        continue;
      }
      if (c < '0' || c > '7') {
        return -1;
      }
      v = v * 8 + (c - '0');
      digits = true;
    }
    return v;
  }

  private static int readFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
    int total = 0;
    while (b.hasRemaining()) {
      int n = ch.read(b, pos + total);
      if (n < 0) {
        break;
      }
      total += n;
    }
    return total;
  }
}
