package io.lazypull.shim.fanotify;

import io.lazypull.protocol.ProtocolException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The fanotify relay's control socket ({@code <cache-dir>/.relay.sock}, SEQPACKET, mode 0600):
 * how {@code lazypull mount --frontend fanotify} asks the relay for the cache files of an image
 * before it calls mount(2). Native byte order, like the device protocol
 * (docs/design/shim-protocol.md, "The fanotify relay's control socket").
 *
 * <pre>
 * request:  0 u32 tag | 4 u8 kind | 5 payload
 *   OPEN     u8 flags (1 = WHOLE) | u16 domain length | domain (UTF-8) | blob (UTF-8, the rest)
 *   MOUNTED  the mount's target path (UTF-8)
 * reply:    0 u32 tag | 4 i32 result (0 or -errno) | 8 payload
 *   OPEN     i64 size | u8 complete | the cache file's path (UTF-8)
 *   MOUNTED  (none)
 * </pre>
 *
 * A connection is one mount: the objects it opens stay in use until the connection closes
 * without MOUNTED, or, after MOUNTED, until the target is no longer an EROFS mount of the
 * image's meta cache file.
 */
public final class RelayWire {
  /** Where the control socket lives in the cache directory (a dot name is never a cache entry). */
  public static final String SOCKET_NAME = ".relay.sock";
  public static final byte KIND_OPEN = 1;
  public static final byte KIND_MOUNTED = 2;
  /** OPEN flag: fetch the whole blob before answering (the meta blob, which raises no events). */
  public static final int FLAG_WHOLE = 1;
  public static final int MAX_DATAGRAM = 8192;

  private RelayWire() {}

  /** A control request. */
  public sealed interface Request permits Open, Mounted {
    int tag();

    ByteBuffer encode();
  }

  /** Open the blob {@code blob} of {@code domain} (and fetch it whole if {@code whole}). */
  public record Open(int tag, boolean whole, String domain, String blob) implements Request {
    @Override
    public ByteBuffer encode() {
      byte[] d = domain.getBytes(StandardCharsets.UTF_8);
      byte[] b = blob.getBytes(StandardCharsets.UTF_8);
      if (d.length > 0xffff) {
        throw new IllegalArgumentException("domain name of " + d.length + " bytes");
      }
      return header(tag, KIND_OPEN, 1 + 2 + d.length + b.length)
          .put((byte) (whole ? FLAG_WHOLE : 0)).putShort((short) d.length).put(d).put(b).flip();
    }
  }

  /** The image was mounted on {@code target}. */
  public record Mounted(int tag, String target) implements Request {
    @Override
    public ByteBuffer encode() {
      byte[] t = target.getBytes(StandardCharsets.UTF_8);
      return header(tag, KIND_MOUNTED, t.length).put(t).flip();
    }
  }

  private static ByteBuffer header(int tag, byte kind, int payload) {
    int size = 5 + payload;
    if (size > MAX_DATAGRAM) {
      throw new IllegalArgumentException("control request of " + size + " bytes");
    }
    return ByteBuffer.allocate(size).order(ByteOrder.nativeOrder()).putInt(tag).put(kind);
  }

  /** Decodes one request datagram (position to limit). */
  public static Request decodeRequest(ByteBuffer buf) throws ProtocolException {
    ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
    if (b.remaining() < 5) {
      throw new ProtocolException("control request of " + b.remaining() + " bytes");
    }
    int tag = b.getInt();
    byte kind = b.get();
    switch (kind) {
      case KIND_OPEN: {
        if (b.remaining() < 3) {
          throw new ProtocolException("OPEN tag " + tag + ": truncated");
        }
        boolean whole = (b.get() & FLAG_WHOLE) != 0;
        int dlen = b.getShort() & 0xffff;
        if (dlen > b.remaining()) {
          throw new ProtocolException("OPEN tag " + tag + ": domain length " + dlen + " > " + b.remaining());
        }
        String domain = utf8(b, dlen);
        String blob = utf8(b, b.remaining());
        return new Open(tag, whole, domain, blob);
      }
      case KIND_MOUNTED:
        return new Mounted(tag, utf8(b, b.remaining()));
      default:
        throw new ProtocolException("control request tag " + tag + ": unknown kind " + kind);
    }
  }

  /** A reply: {@code result} 0 or -errno; the OPEN fields are meaningful for a successful OPEN. */
  public record Reply(int tag, int result, long size, boolean complete, String path) {
    public static Reply error(int tag, int result) {
      return new Reply(tag, result, 0, false, "");
    }

    public ByteBuffer encode() {
      byte[] p = path.getBytes(StandardCharsets.UTF_8);
      ByteBuffer b = ByteBuffer.allocate(8 + 9 + p.length).order(ByteOrder.nativeOrder()).putInt(tag).putInt(result);
      if (result == 0) {
        b.putLong(size).put((byte) (complete ? 1 : 0)).put(p);
      }
      return b.flip();
    }

    public static Reply decode(ByteBuffer buf) throws ProtocolException {
      ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
      if (b.remaining() < 8) {
        throw new ProtocolException("control reply of " + b.remaining() + " bytes");
      }
      int tag = b.getInt();
      int result = b.getInt();
      if (result != 0 || b.remaining() == 0) {
        return new Reply(tag, result, 0, false, "");
      }
      if (b.remaining() < 9) {
        throw new ProtocolException("control reply tag " + tag + ": truncated");
      }
      long size = b.getLong();
      boolean complete = b.get() != 0;
      return new Reply(tag, result, size, complete, utf8(b, b.remaining()));
    }
  }

  private static String utf8(ByteBuffer b, int len) {
    byte[] bytes = new byte[len];
    b.get(bytes);
    return new String(bytes, StandardCharsets.UTF_8);
  }
}
