package io.lazypull.shim;

import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The listening sockets of the shim's front ends: the device socket, the relay's control socket. */
public final class ShimSockets {
  private static final Logger log = LoggerFactory.getLogger(ShimSockets.class);

  private static final int MY_UID = Posix.getuid();

  private ShimSockets() {}

  /**
   * Listens on {@code path} (SEQPACKET, mode 0600), creating its directory. A stale socket file
   * is removed only if nothing answers on it; anything else at {@code path} is an error.
   */
  public static UnixSocket listen(Path path, int backlog) throws IOException {
    removeStale(path);
    Files.createDirectories(path.toAbsolutePath().getParent());
    return UnixSocket.listen(path, UnixSocket.Type.SEQPACKET, 0600, backlog);
  }

  /**
   * Whether the peer of a connection accepted on {@code path} may use it: our own uid or root
   * (SO_PEERCRED), as the holder checks. The socket's mode 0600 already keeps others out; this
   * also holds when its mode or directory is opened up. A refused peer is logged and closed.
   */
  public static boolean admit(UnixSocket s, Path path) {
    UnixSocket.PeerCredentials cred;
    try {
      cred = s.peerCredentials();
    } catch (ErrnoException e) {
      log.warn("refusing a connection on {}: no peer credentials ({})", path, e.getMessage());
      s.close();
      return false;
    }
    if (cred.uid() != MY_UID && cred.uid() != 0) {
      log.warn("refusing pid {} uid {} on {}: only uid {} or root may connect", cred.pid(), cred.uid(), path, MY_UID);
      s.close();
      return false;
    }
    return true;
  }

  private static void removeStale(Path path) throws IOException {
    if (!Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    Object mode = Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
    if ((((Integer) mode) & 0170000) != Posix.S_IFSOCK) {
      throw new IOException(path + " exists and is not a socket: refusing to replace it");
    }
    try (UnixSocket probe = UnixSocket.connect(path, UnixSocket.Type.SEQPACKET)) {
      throw new IOException("another shim is listening on " + path);
    } catch (ErrnoException e) {
      if (e.errno() != Errno.ECONNREFUSED) {
        throw e;
      }
    }
    log.info("removing stale socket {} (nothing listens on it)", path);
    Files.delete(path);
  }
}
