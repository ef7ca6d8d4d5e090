package io.lazypull.protocol;

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
 *
 * <p>The fanotify relay keeps its group on a connection of its own (see the daemon's {@code
 * GroupKeeper}): the group fd, and before it marks a cache file, that file's fd (opened before
 * any mark, so writes through it raise no pre-content events).
 *
 * <pre>
 * relay -> holder                          holder -> relay
 *   GROUP TAKE                               GROUP &lt;nofile&gt; (+group fd), FILE &lt;name&gt; (+fd)..., END
 *                                            NONE            no group held: make one, then PUT it
 *                                            BUSY &lt;pid&gt;      a live relay owns the group
 *   GROUP PUT &lt;nofile&gt; (+group fd)           OK | ERR &lt;why&gt;  (nofile: the relay's fd limit)
 *   GROUP FILE &lt;volume&gt;/&lt;cookie&gt; (+fd)      OK | ERR &lt;why&gt;  (names as in the cache dir)
 *   GROUP LEAVE                              OK              stopping on purpose with files in use: deny
 *                                                            at once when gone (no successor is coming)
 *   GROUP DROP                               OK              no cache file is in use: let the group go
 * </pre>
 */
public final class HolderWire {
  public static final int MAX = 512;

  private HolderWire() {}

  public static void send(UnixSocket s, String line, int... fds) throws ErrnoException {
    s.send(ByteBuffer.wrap(line.getBytes(StandardCharsets.US_ASCII)), fds);
  }

  /** One line and its fds, or null at EOF. */
  public static Line receive(UnixSocket s) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(MAX);
    UnixSocket.Received r = s.receive(buf);
    if (r.eof()) {
      return null;
    }
    buf.flip();
    return new Line(StandardCharsets.US_ASCII.decode(buf).toString().strip(), r.fds());
  }

  public record Line(String text, int[] fds) {
    public String word() {
      int sp = text.indexOf(' ');
      return sp < 0 ? text : text.substring(0, sp);
    }

    public String arg() {
      int sp = text.indexOf(' ');
      return sp < 0 ? "" : text.substring(sp + 1).strip();
    }

    public void closeFds() {
      for (int fd : fds) {
        io.lazypull.sys.Posix.closeQuietly(fd);
      }
    }
  }
}
