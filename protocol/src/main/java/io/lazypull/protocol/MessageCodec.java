package io.lazypull.protocol;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Encodes and decodes on-demand messages in the kernel's exact layout: host byte order, no
 * padding, {@code len == 16 + payload}. Decoding checks lengths before reading a field, so a
 * corrupt or truncated message is a {@link ProtocolException}, never a wrong value.
 */
public final class MessageCodec {
  /** {@code sizeof(struct cachefiles_msg)}. */
  public static final int HEADER_SIZE = 16;
  /** {@code CACHEFILES_MSG_MAX_SIZE}: read buffers must be at least this big. */
  public static final int MSG_MAX_SIZE = 1024;
  /** {@code sizeof(struct cachefiles_open)}: the fixed part of an OPEN payload. */
  public static final int OPEN_SIZE = 16;
  /** {@code sizeof(struct cachefiles_read)}. */
  public static final int READ_SIZE = 16;
  /** Keys are at most 255 bytes in the kernel (fscache key length is a u8). */
  public static final int MAX_KEY_SIZE = 255;

  private MessageCodec() {}

  /**
   * Decodes the one message in {@code buf} (position to limit, as returned by one read()). The
   * buffer's byte order is ignored: messages are always in native order.
   */
  public static Message decode(ByteBuffer buf) throws ProtocolException {
    ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
    int n = b.remaining();
    if (n < HEADER_SIZE) {
      throw new ProtocolException("message of " + n + " bytes is shorter than its 16-byte header");
    }
    int msgId = b.getInt(0);
    int opcode = b.getInt(4);
    long len = Integer.toUnsignedLong(b.getInt(8));
    int objectId = b.getInt(12);
    if (len != n) {
      throw new ProtocolException("msg " + Integer.toUnsignedString(msgId) + ": header len " + len
          + " != " + n + " bytes read");
    }
    Opcode op = Opcode.of(opcode);
    if (op == null) {
      throw new ProtocolException("msg " + Integer.toUnsignedString(msgId) + ": unknown opcode " + opcode);
    }
    switch (op) {
      case OPEN: {
        if (n < HEADER_SIZE + OPEN_SIZE) {
          throw new ProtocolException("OPEN msg " + msgId + ": " + n + " bytes, payload truncated");
        }
        long vks = Integer.toUnsignedLong(b.getInt(16));
        long cks = Integer.toUnsignedLong(b.getInt(20));
        int fd = b.getInt(24);
        int flags = b.getInt(28);
        if (vks < 1 || vks > MAX_KEY_SIZE + 1 || cks > MAX_KEY_SIZE) {
          throw new ProtocolException("OPEN msg " + msgId + ": bad key sizes volume " + vks + " cookie " + cks);
        }
        if (HEADER_SIZE + OPEN_SIZE + vks + cks != n) {
          throw new ProtocolException("OPEN msg " + msgId + ": 32 + " + vks + " + " + cks + " != len " + n);
        }
        int vStart = HEADER_SIZE + OPEN_SIZE;
        if (b.get(vStart + (int) vks - 1) != 0) {
          throw new ProtocolException("OPEN msg " + msgId + ": volume key is not NUL-terminated");
        }
        String volume = latin1(b, vStart, (int) vks - 1);
        String cookie = latin1(b, vStart + (int) vks, (int) cks);
        return new Message.Open(msgId, objectId, volume, cookie, fd, flags);
      }
      case CLOSE:
        if (n != HEADER_SIZE) {
          throw new ProtocolException("CLOSE msg " + msgId + ": len " + n + " != 16");
        }
        return new Message.Close(msgId, objectId);
      case READ: {
        if (n != HEADER_SIZE + READ_SIZE) {
          throw new ProtocolException("READ msg " + msgId + ": len " + n + " != 32");
        }
        long off = b.getLong(16);
        long len2 = b.getLong(24);
        if (off < 0 || len2 < 0 || off + len2 < 0) {
          throw new ProtocolException("READ msg " + msgId + ": range out of bounds off " + Long.toUnsignedString(off)
              + " len " + Long.toUnsignedString(len2));
        }
        return new Message.Read(msgId, objectId, off, len2);
      }
      default:
        throw new AssertionError(op);
    }
  }

  /** The encoded size of {@code m}. */
  public static int encodedSize(Message m) {
    if (m instanceof Message.Open o) {
      return HEADER_SIZE + OPEN_SIZE + o.volumeKey().length() + 1 + o.cookieKey().length();
    }
    return m instanceof Message.Read ? HEADER_SIZE + READ_SIZE : HEADER_SIZE;
  }

  /** Writes {@code m} at {@code buf}'s position in native order and advances it. */
  public static void encode(Message m, ByteBuffer buf) {
    ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
    int len = encodedSize(m);
    if (len > MSG_MAX_SIZE) {
      throw new IllegalArgumentException("message of " + len + " bytes exceeds " + MSG_MAX_SIZE);
    }
    b.putInt(m.msgId()).putInt(m.opcode().code()).putInt(len).putInt(m.objectId());
    if (m instanceof Message.Open o) {
      byte[] v = o.volumeKey().getBytes(StandardCharsets.ISO_8859_1);
      byte[] c = o.cookieKey().getBytes(StandardCharsets.ISO_8859_1);
      if (v.length > MAX_KEY_SIZE || c.length > MAX_KEY_SIZE) {
        throw new IllegalArgumentException("key longer than " + MAX_KEY_SIZE + " bytes");
      }
      b.putInt(v.length + 1).putInt(c.length).putInt(o.fd()).putInt(o.flags());
      b.put(v).put((byte) 0).put(c);
    } else if (m instanceof Message.Read r) {
      b.putLong(r.offset()).putLong(r.length());
    }
    buf.position(buf.position() + len);
  }

  /** {@code m} encoded into a new buffer (flipped, ready to send). */
  public static ByteBuffer encode(Message m) {
    ByteBuffer buf = ByteBuffer.allocate(encodedSize(m));
    encode(m, buf);
    return buf.flip();
  }

  /** A key as it may be logged: non-printable bytes escaped (cookie keys are not C strings). */
  public static String printable(String key) {
    StringBuilder sb = new StringBuilder(key.length() + 2).append('"');
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        sb.append(c);
      } else {
        sb.append(String.format("\\x%02x", (int) c));
      }
    }
    return sb.append('"').toString();
  }

  private static String latin1(ByteBuffer b, int off, int len) {
    byte[] bytes = new byte[len];
    b.get(off, bytes);
    return new String(bytes, StandardCharsets.ISO_8859_1);
  }
}
