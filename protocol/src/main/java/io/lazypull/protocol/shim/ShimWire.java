package io.lazypull.protocol.shim;

import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.ProtocolException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The datagrams between the daemon's {@code ShimDevice} and the fuse-shim
 * (docs/design/shim-protocol.md). Both ends encode and decode here and nowhere else. All
 * integers are in native byte order, like the kernel's messages.
 *
 * <pre>
 * device socket, daemon to shim:      device socket, shim to daemon:
 *  0     4      5                       0     4        8
 *  +-----+------+---------+             +-----+--------+---------+
 *  | tag | kind | payload |             | tag | result | payload |
 *  +-----+------+---------+             +-----+--------+---------+
 *   u32   u8                             u32   i32
 *
 * anon socket, daemon to shim: u8 kind = CREAD | u32 msg_id;  shim to daemon: i32 result
 * </pre>
 */
public final class ShimWire {
  /** A command written to the device ({@code "copen 7,4096"}); payload = the command text. */
  public static final byte KIND_WRITE = 1;
  /** One read(2) of the device; no payload. The reply carries one message or nothing. */
  public static final byte KIND_READ = 2;
  /** {@code CACHEFILES_IOC_READ_COMPLETE} on an anon socket. */
  public static final byte KIND_CREAD = 3;

  /** The tag of the shim's unsolicited datagrams: wake-ups (result 0) and refusals (-errno). */
  public static final int WAKEUP_TAG = 0;

  public static final int REQUEST_HEADER_SIZE = 5;
  public static final int REPLY_HEADER_SIZE = 8;
  public static final int CREAD_SIZE = 5;
  public static final int RESULT_SIZE = 4;

  /**
   * The shim's receive buffer: a header and two pages. Commands must be shorter than a page;
   * a longer one still arrives whole and is rejected with EOPNOTSUPP, as by the kernel.
   */
  public static final int MAX_REQUEST_SIZE = REQUEST_HEADER_SIZE + 2 * 4096;
  /** A receive buffer big enough for any reply: a header and one message. */
  public static final int MAX_REPLY_SIZE = REPLY_HEADER_SIZE + MessageCodec.MSG_MAX_SIZE;

  /** An OPEN's reply carries exactly these two fds, in this order. */
  public static final int OPEN_FD_COUNT = 2;
  public static final int OPEN_FD_ANON = 0;
  public static final int OPEN_FD_CACHE_FILE = 1;

  private ShimWire() {}

  /** A datagram from the daemon on the device socket. */
  public record Request(int tag, byte kind, byte[] payload) {
    public static Request write(int tag, String command) {
      return new Request(tag, KIND_WRITE, command.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
    }

    public static Request read(int tag) {
      return new Request(tag, KIND_READ, new byte[0]);
    }

    /** The datagram, flipped and ready to send. */
    public ByteBuffer encode() {
      ByteBuffer b = ByteBuffer.allocate(REQUEST_HEADER_SIZE + payload.length).order(ByteOrder.nativeOrder());
      return b.putInt(tag).put(kind).put(payload).flip();
    }

    /** Decodes one received datagram (position to limit). */
    public static Request decode(ByteBuffer buf) throws ProtocolException {
      ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
      if (b.remaining() < REQUEST_HEADER_SIZE) {
        throw new ProtocolException("device datagram of " + b.remaining() + " bytes is shorter than its 5-byte header");
      }
      int tag = b.getInt();
      byte kind = b.get();
      if (kind != KIND_WRITE && kind != KIND_READ) {
        throw new ProtocolException("device datagram tag " + Integer.toUnsignedString(tag) + ": unknown kind " + kind);
      }
      byte[] payload = new byte[b.remaining()];
      b.get(payload);
      if (kind == KIND_READ && payload.length != 0) {
        throw new ProtocolException("READ datagram tag " + Integer.toUnsignedString(tag) + " has a " + payload.length + "-byte payload");
      }
      return new Request(tag, kind, payload);
    }
  }

  /** A datagram from the shim on the device socket: a reply, a wake-up or a refusal. */
  public record Reply(int tag, int result, byte[] payload) {
    /** The wake-up: "a request became deliverable". */
    public static final Reply WAKEUP = new Reply(WAKEUP_TAG, 0, new byte[0]);

    public static Reply of(int tag, int result) {
      return new Reply(tag, result, new byte[0]);
    }

    /** The datagram a second connection gets before it is closed (the kernel's second open). */
    public static Reply refusal(int errno) {
      return new Reply(WAKEUP_TAG, -errno, new byte[0]);
    }

    public boolean isWakeup() {
      return tag == WAKEUP_TAG && result == 0;
    }

    public boolean isRefusal() {
      return tag == WAKEUP_TAG && result < 0;
    }

    public ByteBuffer encode() {
      ByteBuffer b = ByteBuffer.allocate(REPLY_HEADER_SIZE + payload.length).order(ByteOrder.nativeOrder());
      return b.putInt(tag).putInt(result).put(payload).flip();
    }

    public static Reply decode(ByteBuffer buf) throws ProtocolException {
      ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
      if (b.remaining() < REPLY_HEADER_SIZE) {
        throw new ProtocolException("shim datagram of " + b.remaining() + " bytes is shorter than its 8-byte header");
      }
      int tag = b.getInt();
      int result = b.getInt();
      byte[] payload = new byte[b.remaining()];
      b.get(payload);
      if (tag == WAKEUP_TAG && payload.length != 0) {
        throw new ProtocolException("wake-up datagram with a " + payload.length + "-byte payload");
      }
      return new Reply(tag, result, payload);
    }

    /** The payload as a buffer, for {@link MessageCodec#decode}. */
    public ByteBuffer payloadBuffer() {
      return ByteBuffer.wrap(payload);
    }
  }

  /** {@code u8 kind = CREAD | u32 msg_id}, flipped and ready to send on an anon socket. */
  public static ByteBuffer encodeCread(int msgId) {
    return ByteBuffer.allocate(CREAD_SIZE).order(ByteOrder.nativeOrder()).put(KIND_CREAD).putInt(msgId).flip();
  }

  /**
   * The msg_id of a CREAD datagram.
   *
   * @throws ProtocolException if it is not a 5-byte CREAD (the shim answers -EINVAL, as the
   *     kernel answers any other ioctl)
   */
  public static int decodeCread(ByteBuffer buf) throws ProtocolException {
    ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
    if (b.remaining() != CREAD_SIZE || b.get(0) != KIND_CREAD) {
      throw new ProtocolException("anon datagram of " + b.remaining() + " bytes is not a CREAD");
    }
    return b.getInt(1);
  }

  /** An anon socket's reply: the ioctl's result, 0 or -errno. */
  public static ByteBuffer encodeResult(int result) {
    return ByteBuffer.allocate(RESULT_SIZE).order(ByteOrder.nativeOrder()).putInt(result).flip();
  }

  public static int decodeResult(ByteBuffer buf) throws ProtocolException {
    ByteBuffer b = buf.slice().order(ByteOrder.nativeOrder());
    if (b.remaining() != RESULT_SIZE) {
      throw new ProtocolException("anon reply of " + b.remaining() + " bytes, expected 4");
    }
    return b.getInt(0);
  }
}
