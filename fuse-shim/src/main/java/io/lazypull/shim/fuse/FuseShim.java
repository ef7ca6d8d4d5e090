package io.lazypull.shim.fuse;

import io.lazypull.shim.Shim;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fuse-shim, mounted: a {@link Shim} behind a jnr-fuse mount at the mountpoint.
 *
 * <p>jnr-fuse's own non-blocking mount sleeps 2 s and reports a later failure as success, so
 * the mount runs blocking in a thread of ours while this class polls /proc/self/mountinfo.
 * libfuse 2 runs multi-threaded: a reader waiting for a remote fetch must not hold up others
 * (with {@code -s} every callback would be serialized behind it).
 *
 * <p>Stopping: waiting readers get EIO, the mount is unmounted (if an EROFS mount still uses
 * our files: the FUSE connection is aborted and the mount lazily detached), then the device
 * socket closes. A mountpoint left behind by a killed shim (ENOTCONN) is lazily unmounted first,
 * together with any EROFS mount stacked on its files.
 */
public final class FuseShim implements Closeable {
  private static final Logger log = LoggerFactory.getLogger(FuseShim.class);
  private static final long MOUNT_TIMEOUT_MILLIS = 10_000;
  private static final long STOP_TIMEOUT_MILLIS = 5_000;

  /**
   * FUSE mount options: extra {@code -o} options (comma lists), libfuse debug output; and how
   * long a reader waits for the daemon (see {@link io.lazypull.shim.ondemand.OndemandCache#maxWaitNanos()}).
   */
  public record Options(List<String> fuseOptions, boolean debug, java.time.Duration maxWait,
      io.lazypull.shim.CacheBudget.Config budget) {
    public static final Options DEFAULT = new Options(List.of(), false);

    public Options(List<String> fuseOptions, boolean debug) {
      this(fuseOptions, debug, io.lazypull.shim.ondemand.OndemandCache.DEFAULT_MAX_WAIT);
    }

    public Options(List<String> fuseOptions, boolean debug, java.time.Duration maxWait) {
      this(fuseOptions, debug, maxWait, io.lazypull.shim.CacheBudget.Config.unbounded());
    }
  }

  private final Path mountpoint;
  private final Shim shim;
  private final ShimFuseFs fs;
  private final Thread fuseThread;
  private final AtomicReference<Throwable> mountError = new AtomicReference<>();
  private final AtomicBoolean closed = new AtomicBoolean();

  private FuseShim(Path mountpoint, Shim shim, Options options) {
    this.mountpoint = mountpoint;
    this.shim = shim;
    this.fs = new ShimFuseFs(shim.files());
    List<String> args = new ArrayList<>(List.of("-o", "ro,allow_other,default_permissions"));
    for (String o : options.fuseOptions()) {
      args.add("-o");
      args.add(o);
    }
    String[] argv = args.toArray(new String[0]);
    this.fuseThread = new Thread(() -> {
      try {
        fs.mount(mountpoint, true, options.debug(), argv);
      } catch (Throwable t) {
        mountError.set(t);
      }
    }, "fuse-main");
    fuseThread.setDaemon(true);
  }

  /**
   * Starts the shim (cache dir, device socket) and mounts it at {@code mountpoint} (created if
   * needed). Returns once the mount is visible.
   */
  public static FuseShim start(Path mountpoint, Path cacheDir, Path socket, Options options) throws IOException {
    Path mp = mountpoint.toAbsolutePath().normalize();
    cleanDeadMount(mp);
    Files.createDirectories(mp);
    if (Mounts.isMountPoint(mp)) {
      throw new IOException(mp + " is already a mount point");
    }
    Shim shim = Shim.start(cacheDir, socket, options.maxWait(), options.budget());
    FuseShim f = new FuseShim(mp, shim, options);
    try {
      f.mount();
      shim.startEviction();
    } catch (IOException | RuntimeException e) {
      f.close();
      throw e;
    }
    return f;
  }

  private void mount() throws IOException {
    fuseThread.start();
    long deadline = System.nanoTime() + MOUNT_TIMEOUT_MILLIS * 1_000_000;
    while (true) {
      Mounts.MountInfo mi = Mounts.mountInfo(mountpoint);
      if (mi != null && mi.fsType().startsWith("fuse")) {
        log.info("FUSE mounted at {} ({} {}), cache dir {}, device socket {}", mountpoint, mi.fsType(),
            mi.source(), shim.cacheDir(), shim.socket());
        return;
      }
      if (!fuseThread.isAlive()) {
        Throwable t = mountError.get();
        throw new IOException("FUSE mount at " + mountpoint + " failed"
            + (t == null ? "" : ": " + t.getMessage() + (t.getCause() == null ? "" : " (" + t.getCause().getMessage() + ")")), t);
      }
      if (System.nanoTime() > deadline) {
        throw new IOException("FUSE mount at " + mountpoint + " did not appear within "
            + MOUNT_TIMEOUT_MILLIS / 1000 + " s");
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while mounting " + mountpoint, e);
      }
    }
  }

  public Shim shim() {
    return shim;
  }

  public Path mountpoint() {
    return mountpoint;
  }

  /** Waits until the FUSE loop ends (unmounted by {@link #close} or from outside). */
  public void awaitTermination() throws InterruptedException {
    fuseThread.join();
  }

  /** True while the FUSE loop runs. */
  public boolean isRunning() {
    return fuseThread.isAlive();
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    shim.failWaiters();
    if (fuseThread.isAlive()) {
      unmount();
      join(STOP_TIMEOUT_MILLIS);
      if (fuseThread.isAlive()) {
        log.warn("the FUSE loop at {} did not end within {} s", mountpoint, STOP_TIMEOUT_MILLIS / 1000);
      }
    }
    shim.close();
  }

  /**
   * umount(2); if an EROFS mount still uses our files (EBUSY), MNT_FORCE first, which aborts the
   * FUSE connection (fuse_umount_begin) so the loop ends and the EROFS mount gets ENOTCONN, then
   * a lazy unmount. libfuse's own teardown then finds nothing left to unmount.
   */
  private void unmount() {
    try {
      Mounts.umount(mountpoint, 0);
      log.info("unmounted {}", mountpoint);
      return;
    } catch (ErrnoException e) {
      if (e.errno() != Errno.EBUSY) {
        if (e.errno() != Errno.EINVAL && e.errno() != Errno.ENOENT) {
          log.warn("unmount {}: {}", mountpoint, e.getMessage());
        }
        return;
      }
    }
    log.warn("{} is busy (an EROFS mount still uses its files?): aborting the FUSE connection and unmounting lazily", mountpoint);
    try {
      Mounts.umount(mountpoint, Mounts.MNT_FORCE);
      return;
    } catch (ErrnoException e) {
      log.debug("forced unmount of {}: {}", mountpoint, e.getMessage());
    }
    try {
      Mounts.umount(mountpoint, Mounts.MNT_DETACH);
    } catch (ErrnoException e) {
      log.warn("lazy unmount of {}: {}", mountpoint, e.getMessage());
    }
  }

  private void join(long millis) {
    try {
      fuseThread.join(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * If {@code mp} is the FUSE mount of a shim that was killed (its connection is gone: ENOTCONN),
   * lazily unmounts it, and first every EROFS mount whose backing files live on it (they can
   * only fail from now on). A live mount is an error: another shim serves it.
   */
  public static void cleanDeadMount(Path mp) throws IOException {
    Mounts.MountInfo mi = Mounts.mountInfo(mp);
    if (mi == null) {
      return;
    }
    if (!mi.fsType().startsWith("fuse")) {
      throw new IOException(mp + " is already a mount point (" + mi.fsType() + " " + mi.source() + ")");
    }
    try {
      int fd = Posix.open(mp.toString(), Posix.O_RDONLY | Posix.O_DIRECTORY, 0);
      Posix.closeQuietly(fd);
      throw new IOException(mp + " is a live FUSE mount (" + mi.source() + "): is another shim running?");
    } catch (ErrnoException e) {
      if (e.errno() != Errno.ENOTCONN) {
        throw e;
      }
    }
    String prefix = mp + "/";
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      if (m.fsType().equals("erofs") && m.source().startsWith(prefix)) {
        log.warn("lazily unmounting {}: its EROFS mount of {} uses the dead shim mount", m.mountPoint(), m.source());
        Mounts.umount(Path.of(m.mountPoint()), Mounts.MNT_DETACH);
      }
    }
    Mounts.umount(mp, Mounts.MNT_DETACH);
    log.warn("{} was the dead FUSE mount of a killed shim (ENOTCONN): lazily unmounted it", mp);
  }
}
