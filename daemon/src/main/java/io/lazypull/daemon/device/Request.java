package io.lazypull.daemon.device;

/**
 * A request read from a {@link Device}: the protocol's OPEN, CLOSE and READ messages, with the
 * OPEN's anon fd already wrapped. {@code msgId} answers the request; {@code objectId} names the
 * cache object (it changes when an object is re-opened after a crash).
 */
public sealed interface Request permits Request.Open, Request.Close, Request.Read {
  int msgId();

  int objectId();

  /**
   * OPEN: a cookie was looked up. Answer with {@link Device#copen} (then keep {@code anonFd}
   * until CLOSE) or {@link Device#copenError} (then close {@code anonFd} at once).
   *
   * @param volumeKey e.g. {@code "erofs,<domain>"}, without the NUL
   * @param cookieKey the blob name: the fsid for the meta blob, a device tag for a data blob
   */
  record Open(int msgId, int objectId, String volumeKey, String cookieKey, AnonFd anonFd)
      implements Request {
    @Override
    public String toString() {
      return "OPEN{msgId=" + Integer.toUnsignedString(msgId) + ", objectId=" + objectId
          + ", volume=" + io.lazypull.protocol.MessageCodec.printable(volumeKey)
          + ", cookie=" + io.lazypull.protocol.MessageCodec.printable(cookieKey) + "}";
    }
  }

  /** CLOSE: the object is no longer used; close its anon fd. No reply. */
  record Close(int msgId, int objectId) implements Request {}

  /** READ: fill [offset, offset+length) of the object, then complete it on the object's anon fd. */
  record Read(int msgId, int objectId, long offset, long length) implements Request {
    public long end() {
      return offset + length;
    }
  }
}
