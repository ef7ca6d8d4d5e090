package io.lazypull.cli;

import io.lazypull.shim.fanotify.RelayClient;
import io.lazypull.shim.fuse.FuseShim;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a killed 'up' leaves behind, cleared by the next one before it starts anything. Its
 * children stop when it dies, but the image stays mounted on TARGET, on files of a FUSE
 * connection nobody serves (ENOTCONN on every read of data not cached), and maybe the shim's
 * dead FUSE mount at DIR/shim; mounting again would stack a second image on the dead one.
 *
 * <p>Only what is provably this stack's and dead is cleared: it runs with the stack's lock
 * held once the processes of the earlier 'up' on DIR have exited ({@link StackLock}), so an
 * EROFS mount whose backing files are under DIR/shim (FUSE) or DIR/blobs (fanotify) has no
 * server left, unless one not started by 'up' answers there: a live FUSE mount at DIR/shim or
 * a relay on DIR/blobs is refused, as is any other mount on TARGET.
 */
final class DeadMounts {
  private static final Logger log = LoggerFactory.getLogger(DeadMounts.class);
  /** Stacked mounts cleared at most (a loop bound: each pass removes one). */
  private static final int MAX_STACKED = 16;

  private DeadMounts() {}

  static void clear(Stack stack, Path target) throws IOException {
    if (Mounts.isMountPoint(stack.shimDir)) {
      // A dead shim mount (ENOTCONN) and the images on its files are unmounted, saying so; a
      // live one (a shim 'up' did not start) is an error.
      FuseShim.cleanDeadMount(stack.shimDir);
    }
    Set<String> fuseFiles = prefixes(stack.shimDir);
    Set<String> relayFiles = prefixes(stack.cacheDir);
    for (int i = 0; i < MAX_STACKED; i++) {
      Mounts.MountInfo mi = Mounts.mountInfo(target);
      if (mi == null) {
        return;
      }
      boolean erofs = mi.fsType().equals("erofs");
      boolean overFuse = erofs && startsWithAny(mi.source(), fuseFiles);
      boolean overRelay = erofs && startsWithAny(mi.source(), relayFiles);
      if (!overFuse && !overRelay) {
        throw new IOException(target + " is already a mount point (" + mi.fsType() + " " + mi.source()
            + "), not one of this cache dir's: unmount it first, or choose another target");
      }
      if (overRelay && relayAnswers(stack.cacheDir)) {
        throw new IOException(target + " is mounted through a fanotify relay that still serves "
            + stack.cacheDir + " and was not started by 'up': unmount " + target + " or stop that relay first");
      }
      Mounts.unmountOrDetach(target);
      log.warn("{}: unmounted the dead image left there by an 'up' that was killed (erofs on {}; its {} is gone)",
          target, mi.source(), overFuse ? "shim" : "fanotify relay");
    }
    throw new IOException(target + ": more than " + MAX_STACKED + " mounts stacked on it; unmount them first");
  }

  /** "DIR/" as given and as the kernel may show it (symlinks resolved). */
  private static Set<String> prefixes(Path dir) throws IOException {
    Set<String> p = new LinkedHashSet<>();
    p.add(dir.toAbsolutePath().normalize() + "/");
    p.add(dir.toRealPath() + "/");
    return p;
  }

  private static boolean startsWithAny(String s, Set<String> prefixes) {
    return prefixes.stream().anyMatch(s::startsWith);
  }

  private static boolean relayAnswers(Path cacheDir) {
    try (RelayClient c = RelayClient.connect(cacheDir)) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
