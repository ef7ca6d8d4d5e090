package io.lazypull.shim.fanotify;

import io.lazypull.protocol.ProtocolException;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * The mount command's end of the relay's control socket: one connection per mount (see {@link
 * RelayWire}). Not thread-safe: one request at a time.
 */
public final class RelayClient implements AutoCloseable {
  /** A blob the relay opened: its size and cache file, complete or marked for pre-content events. */
  public record OpenedBlob(long size, boolean complete, Path path) {}

  private final UnixSocket socket;
  private int nextTag = 1;

  private RelayClient(UnixSocket socket) {
    this.socket = socket;
  }

  /** The control socket of the relay serving {@code cacheDir}. */
  public static Path socketPath(Path cacheDir) {
    return cacheDir.toAbsolutePath().resolve(RelayWire.SOCKET_NAME);
  }

  /**
   * Connects to the relay of {@code cacheDir}.
   *
   * @throws IOException naming the missing relay when nothing listens there
   */
  public static RelayClient connect(Path cacheDir) throws IOException {
    Path p = socketPath(cacheDir);
    try {
      return new RelayClient(UnixSocket.connect(p, UnixSocket.Type.SEQPACKET));
    } catch (ErrnoException e) {
      if (e.errno() == Errno.ENOENT || e.errno() == Errno.ECONNREFUSED) {
        throw new IOException("no fanotify relay serves " + cacheDir + " (" + p + ": " + Errno.describe(e.errno())
            + "); start 'lazypull shim --frontend fanotify --cache-dir " + cacheDir + " --socket SOCKET' first", e);
      }
      throw e;
    }
  }

  /**
   * Opens a blob through the relay (the daemon answers its OPEN); with {@code whole}, the relay
   * fetches it whole before answering.
   *
   * @throws ErrnoException with the relay's errno (ENOENT: the daemon does not know the blob;
   *     EIO: no daemon bound, or the fetch failed)
   */
  public OpenedBlob open(String domain, String blob, boolean whole) throws IOException {
    RelayWire.Reply r = call(new RelayWire.Open(nextTag++, whole, domain, blob));
    if (r.result() < 0) {
      throw new ErrnoException("relay OPEN", -r.result(), domain + "/" + blob);
    }
    return new OpenedBlob(r.size(), r.complete(), Path.of(r.path()));
  }

  /** Tells the relay the image is mounted on {@code target}: its blobs stay open until unmounted. */
  public void mounted(Path target) throws IOException {
    RelayWire.Reply r = call(new RelayWire.Mounted(nextTag++, target.toAbsolutePath().normalize().toString()));
    if (r.result() < 0) {
      throw new ErrnoException("relay MOUNTED", -r.result(), target.toString());
    }
  }

  private RelayWire.Reply call(RelayWire.Request req) throws IOException {
    socket.send(req.encode());
    ByteBuffer buf = ByteBuffer.allocate(RelayWire.MAX_DATAGRAM);
    UnixSocket.Received rec = socket.receive(buf);
    rec.closeFds();
    if (rec.eof()) {
      throw new IOException("the fanotify relay closed the control connection (did it stop?)");
    }
    RelayWire.Reply r;
    try {
      r = RelayWire.Reply.decode(buf.flip());
    } catch (ProtocolException e) {
      throw new IOException("relay: " + e.getMessage(), e);
    }
    if (r.tag() != req.tag()) {
      throw new IOException("relay answered tag " + r.tag() + " to request " + req.tag());
    }
    return r;
  }

  @Override
  public void close() {
    socket.close();
  }
}
