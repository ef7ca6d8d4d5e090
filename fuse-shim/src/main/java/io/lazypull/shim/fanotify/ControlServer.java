package io.lazypull.shim.fanotify;

import io.lazypull.protocol.ProtocolException;
import io.lazypull.shim.ShimSockets;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.UnixSocket;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The relay's control socket ({@link RelayWire}): a thread accepts, and each connection (one
 * mount command) is served by a thread of its own, one request at a time: an OPEN may wait for
 * the daemon's copen and for a whole fetch, and must not hold up another mount.
 */
final class ControlServer implements Closeable {
  private static final Logger log = LoggerFactory.getLogger(ControlServer.class);

  /** What a control connection asks of the relay. */
  interface Handler {
    /** A new connection: a mount begins. */
    Object sessionStarted();

    RelayWire.Reply open(Object session, RelayWire.Open open);

    RelayWire.Reply mounted(Object session, RelayWire.Mounted mounted);

    /** The connection closed. */
    void sessionEnded(Object session);
  }

  private final Path path;
  private final UnixSocket listener;
  private final Handler handler;
  private final Thread acceptor;
  private final Set<UnixSocket> connections = ConcurrentHashMap.newKeySet();
  private volatile boolean closed;

  private ControlServer(Path path, UnixSocket listener, Handler handler) {
    this.path = path;
    this.listener = listener;
    this.handler = handler;
    this.acceptor = new Thread(this::acceptLoop, "relay-control");
    this.acceptor.setDaemon(true);
  }

  static ControlServer start(Path path, Handler handler) throws IOException {
    ControlServer s = new ControlServer(path, ShimSockets.listen(path, 16), handler);
    s.acceptor.start();
    log.info("control socket {} listening", path);
    return s;
  }

  private void acceptLoop() {
    while (!closed) {
      UnixSocket s;
      try {
        s = listener.accept();
      } catch (ErrnoException e) {
        if (!closed) {
          log.warn("accept on {}: {}", path, e.getMessage());
        }
        return;
      }
      if (s == null) {
        return;
      }
      if (!ShimSockets.admit(s, path)) {
        continue;
      }
      connections.add(s);
      Thread t = new Thread(() -> serve(s), "relay-control-conn");
      t.setDaemon(true);
      t.start();
    }
  }

  private void serve(UnixSocket s) {
    Object session = handler.sessionStarted();
    ByteBuffer buf = ByteBuffer.allocate(RelayWire.MAX_DATAGRAM).order(java.nio.ByteOrder.nativeOrder());
    try {
      while (!closed) {
        buf.clear();
        UnixSocket.Received rec;
        try {
          rec = s.receive(buf);
        } catch (ErrnoException e) {
          if (e.errno() == Errno.ECONNRESET) {
            continue; // the peer closed with replies unread: EOF comes next
          }
          if (!closed) {
            log.debug("control connection: {}", e.getMessage());
          }
          return;
        }
        rec.closeFds();
        if (rec.eof()) {
          return;
        }
        RelayWire.Request req;
        try {
          req = RelayWire.decodeRequest(buf.flip());
        } catch (ProtocolException e) {
          log.warn("control socket: {}", e.getMessage());
          reply(s, RelayWire.Reply.error(buf.remaining() >= 4 ? buf.getInt(0) : 0, -Errno.EINVAL));
          continue;
        }
        RelayWire.Reply r = req instanceof RelayWire.Open o ? handler.open(session, o)
            : handler.mounted(session, (RelayWire.Mounted) req);
        reply(s, r);
      }
    } finally {
      connections.remove(s);
      s.close();
      handler.sessionEnded(session);
    }
  }

  private static void reply(UnixSocket s, RelayWire.Reply r) {
    try {
      s.send(r.encode());
    } catch (ErrnoException e) {
      log.debug("control reply to tag {}: {}", r.tag(), e.getMessage());
    }
  }

  @Override
  public void close() {
    closed = true;
    listener.close();
    for (UnixSocket s : connections) {
      s.close();
    }
    try {
      Files.deleteIfExists(path);
    } catch (IOException e) {
      log.warn("cannot remove {}: {}", path, e.getMessage());
    }
  }
}
