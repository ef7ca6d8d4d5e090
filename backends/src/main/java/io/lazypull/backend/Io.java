package io.lazypull.backend;

import java.io.IOException;
import java.io.InputStream;
import java.net.URLDecoder;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** Small stream helpers shared by the remote stores. */
final class Io {
  static final int COPY_BUFFER = 256 << 10;

  private Io() {}

  /**
   * Reads from {@code in} into {@code dst} until {@code dst} is full, {@code limit} bytes were
   * read, or the stream ends; reports progress to {@code call}. Returns the count.
   */
  static int readInto(InputStream in, ByteBuffer dst, long limit, Call call) throws IOException {
    int n = 0;
    if (dst.hasArray()) {
      byte[] a = dst.array();
      while (dst.hasRemaining() && n < limit) {
        int r = in.read(a, dst.arrayOffset() + dst.position(), (int) Math.min(dst.remaining(), limit - n));
        if (r < 0) {
          break;
        }
        dst.position(dst.position() + r);
        n += r;
        call.progress();
      }
      return n;
    }
    byte[] buf = new byte[(int) Math.min(64 << 10, Math.min(dst.remaining(), limit))];
    while (dst.hasRemaining() && n < limit) {
      int r = in.read(buf, 0, (int) Math.min(buf.length, Math.min(dst.remaining(), limit - n)));
      if (r < 0) {
        break;
      }
      dst.put(buf, 0, r);
      n += r;
      call.progress();
    }
    return n;
  }

  /** Copies {@code in} to its end, or {@code limit} bytes of it, into {@code out}; returns the count. */
  static long copy(InputStream in, WritableByteChannel out, long limit, Call call) throws IOException {
    byte[] buf = new byte[(int) Math.max(1, Math.min(COPY_BUFFER, limit))];
    ByteBuffer bb = ByteBuffer.wrap(buf);
    long n = 0;
    int r;
    while (n < limit && (r = in.read(buf, 0, (int) Math.min(buf.length, limit - n))) >= 0) {
      bb.clear().limit(r);
      while (bb.hasRemaining()) {
        out.write(bb);
      }
      n += r;
      call.progress();
    }
    return n;
  }

  /**
   * An input stream over {@code [offset, offset + length)} of a file that reports progress to
   * {@code call} as it is consumed (so uploads count as alive while the client reads them).
   */
  static InputStream fileRange(Path file, long offset, long length, Call call) {
    return new InputStream() {
      private FileChannel ch;
      private long pos = offset;
      private final long end = offset + length;

      private FileChannel channel() throws IOException {
        if (ch == null) {
          ch = FileChannel.open(file, StandardOpenOption.READ);
        }
        return ch;
      }

      @Override
      public int read() throws IOException {
        byte[] one = new byte[1];
        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
      }

      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        if (pos >= end) {
          return -1;
        }
        int want = (int) Math.min(len, end - pos);
        int r = channel().read(ByteBuffer.wrap(b, off, want), pos);
        if (r < 0) {
          throw new IOException(file + " is shorter than expected (" + pos + " < " + end + ")");
        }
        pos += r;
        call.progress();
        return r;
      }

      @Override
      public int available() {
        return (int) Math.min(Integer.MAX_VALUE, end - pos);
      }

      @Override
      public void close() throws IOException {
        if (ch != null) {
          ch.close();
        }
      }
    };
  }

  /**
   * Parses a URI's raw query into decoded name/value pairs and rejects names not in
   * {@code allowed} (catching typos such as {@code pathstyle=true}).
   */
  static Map<String, String> query(String rawQuery, Set<String> allowed, String uriForErrors) {
    Map<String, String> out = new LinkedHashMap<>();
    if (rawQuery == null || rawQuery.isEmpty()) {
      return out;
    }
    for (String pair : rawQuery.split("&")) {
      if (pair.isEmpty()) {
        continue;
      }
      int eq = pair.indexOf('=');
      String name = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
      String value = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
      if (!allowed.contains(name)) {
        throw new IllegalArgumentException("unknown option '" + name + "' in backend URI "
            + uriForErrors + " (known: " + String.join(", ", allowed) + ")");
      }
      out.put(name, value);
    }
    return out;
  }

  /**
   * HTTP statuses worth retrying: 408, 429 and the 5xx family except 501 (not implemented) and
   * 505 (version not supported), which will not change.
   */
  static boolean transientStatus(int status) {
    return status == 408 || status == 429 || (status >= 500 && status != 501 && status != 505);
  }

  static boolean parseBoolean(String value, String name) {
    switch (value.toLowerCase(java.util.Locale.ROOT)) {
      case "": case "true": case "1": case "yes":
        return true;
      case "false": case "0": case "no":
        return false;
      default:
        throw new IllegalArgumentException(name + " must be true or false, got '" + value + "'");
    }
  }
}
