package io.lazypull.shim;

import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;

/**
 * A daemon speaking the shim's wire by hand (ShimWire over a raw socket), to test the device
 * server without ShimDevice (which lives in the daemon module). Single-threaded.
 */
final class RawDaemon implements AutoCloseable {
  final UnixSocket socket;
  private int nextTag = 100;
  /** Wake-ups received while waiting for replies. */
  int wakeups;
  final Deque<ShimWire.Reply> unsolicited = new ArrayDeque<>();

  RawDaemon(UnixSocket socket) {
    this.socket = socket;
  }

  static RawDaemon connect(Path path) throws IOException {
    return new RawDaemon(UnixSocket.connect(path, UnixSocket.Type.SEQPACKET));
  }

  /** A reply with the fds that came with it. */
  record Got(ShimWire.Reply reply, int[] fds) {
    Message message() throws IOException {
      return reply.result() <= 0 ? null : MessageCodec.decode(reply.payloadBuffer());
    }
  }

  Got receive() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(ShimWire.MAX_REPLY_SIZE);
    UnixSocket.Received r = socket.receive(b);
    if (r.eof()) {
      throw new IOException("EOF");
    }
    return new Got(ShimWire.Reply.decode(b.flip()), r.fds());
  }

  /** Sends a datagram and returns its reply, counting wake-ups that come first. */
  Got call(ShimWire.Request req) throws IOException {
    socket.send(req.encode());
    while (true) {
      Got g = receive();
      if (g.reply().tag() == ShimWire.WAKEUP_TAG) {
        if (g.reply().isWakeup()) {
          wakeups++;
        }
        unsolicited.add(g.reply());
        continue;
      }
      if (g.reply().tag() != req.tag()) {
        throw new IOException("reply tag " + g.reply().tag() + " for request " + req.tag());
      }
      return g;
    }
  }

  int write(String command) throws IOException {
    return call(ShimWire.Request.write(nextTag++, command)).reply().result();
  }

  Got read() throws IOException {
    return call(ShimWire.Request.read(nextTag++));
  }

  /** Counts wake-ups queued right now without blocking. */
  int drainWakeups() throws IOException {
    int n = 0;
    while (true) {
      ByteBuffer b = ByteBuffer.allocate(ShimWire.MAX_REPLY_SIZE);
      UnixSocket.Received r = socket.receiveNonBlocking(b);
      if (r == null || r.eof()) {
        return n;
      }
      r.closeFds();
      if (ShimWire.Reply.decode(b.flip()).isWakeup()) {
        n++;
      }
    }
  }

  /** CREAD on an anon socket fd; returns the shim's result. */
  static int cread(int anonFd, int msgId) throws IOException {
    UnixSocket s = UnixSocket.adopt(anonFd, UnixSocket.Type.SEQPACKET);
    s.send(ShimWire.encodeCread(msgId));
    ByteBuffer b = ByteBuffer.allocate(4);
    s.receive(b);
    return ShimWire.decodeResult(b.flip());
  }

  static void closeAll(int[] fds) {
    for (int fd : fds) {
      Posix.closeQuietly(fd);
    }
  }

  @Override
  public void close() {
    socket.release();
  }
}
