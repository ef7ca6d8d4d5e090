package io.lazypull.daemon.failover;

import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The holder's wire: one ASCII line per SEQPACKET datagram, the device fd attached with
 * SCM_RIGHTS where the line says so.
 *
 * <pre>
 * daemon -> holder                       holder -> daemon
 *   TAKE &lt;waitMillis&gt;   (-1: forever)     FD (+fd)        a device is held: adopt it, write restore
 *                                          NONE            none held: open + bind one, then PUT it
 *                                          BUSY &lt;pid&gt;      another daemon holds the lease
 *   PUT (+fd)                              OK | ERR &lt;why&gt;  (only by the lease holder)
 *   RELEASE                                OK              graceful end: anon fds already closed
 *   UPGRADE                                OK &lt;pid&gt; | ERR  ask the active daemon to hand over
 *   STATUS                                 held=.. active=.. waiting=..
 *                                          HANDOVER        (to the lease holder, unsolicited)
 * </pre>
 *
 * A TAKE that is answered FD or NONE makes its connection the lease: the one active daemon.
 */
final class HolderProtocol {
  static final int MAX = 512;

  private HolderProtocol() {}

  static void send(UnixSocket s, String line, int... fds) throws ErrnoException {
    s.send(ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII)), fds);
  }

  /** One line and its fds, or null at EOF. */
  static Line receive(UnixSocket s) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(MAX);
    UnixSocket.Received r = s.receive(buf);
    if (r.eof()) {
      return null;
    }
    buf.flip();
    return new Line(StandardCharsets.US_ASCII.decode(buf).toString().strip(), r.fds());
  }

  record Line(String text, int[] fds) {
    String word() {
      int sp = text.indexOf(' ');
      return sp < 0 ? text : text.substring(0, sp);
    }

    String arg() {
      int sp = text.indexOf(' ');
      return sp < 0 ? "" : text.substring(sp + 1).strip();
    }

    void closeFds() {
      for (int fd : fds) {
        io.lazypull.sys.Posix.closeQuietly(fd);
      }
    }
  }
}
