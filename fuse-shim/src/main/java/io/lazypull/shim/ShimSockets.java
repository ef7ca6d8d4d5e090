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
