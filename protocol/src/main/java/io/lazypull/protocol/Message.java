package io.lazypull.protocol;

/**
 * One request as read from {@code /dev/cachefiles} (or from the fuse-shim, which speaks the
 * same bytes). Every message starts with {@code struct cachefiles_msg}:
 *
 * <pre>
 *  0      4        8     12         16
 *  +------+--------+-----+-----------+---------------------+
 *  |msg_id| opcode | len | object_id | payload (opcode)... |
 *  +------+--------+-----+-----------+---------------------+
 * </pre>
 *
 * {@code msg_id} identifies the request until it is answered (0 is valid; ids are reused);
 * {@code object_id} identifies the cache object (>= 1) and changes when the object is
 * re-opened after a daemon crash.
 */
public sealed interface Message permits Message.Open, Message.Close, Message.Read {
  int msgId();

  int objectId();

  Opcode opcode();

  /**
   * OPEN: {@code struct cachefiles_open} {volume_key_size, cookie_key_size, fd, flags} then the
   * volume key (with its NUL, which is not part of {@link #volumeKey()}) and the cookie key
   * (no NUL). Keys are decoded as ISO-8859-1 so that every byte survives.
   *
   * @param fd the anon fd the kernel installed in the reader's fd table (the shim sends -1 and
   *     passes the fd with SCM_RIGHTS instead)
   */
  record Open(int msgId, int objectId, String volumeKey, String cookieKey, int fd, int flags)
      implements Message {
    @Override
    public Opcode opcode() {
      return Opcode.OPEN;
    }

    @Override
    public String toString() {
      return "OPEN{msgId=" + msgId + ", objectId=" + objectId + ", volume=" + MessageCodec.printable(volumeKey)
          + ", cookie=" + MessageCodec.printable(cookieKey) + ", fd=" + fd + "}";
    }
  }

  /** CLOSE: no payload and no reply. */
  record Close(int msgId, int objectId) implements Message {
    @Override
    public Opcode opcode() {
      return Opcode.CLOSE;
    }
  }

  /** READ: {@code struct cachefiles_read} {u64 off, u64 len}, in the object's address space. */
  record Read(int msgId, int objectId, long offset, long length) implements Message {
    @Override
    public Opcode opcode() {
      return Opcode.READ;
    }

    public long end() {
      return offset + length;
    }
  }
}
