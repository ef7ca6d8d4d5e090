package io.lazypull.cli;

import io.lazypull.shim.fuse.FuseShim;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "shim", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Run the fuse-shim in the foreground: a FUSE filesystem that plays the kernel's part",
      "of cachefiles on-demand mode, for kernels without /dev/cachefiles.",
      "",
      "It serves MOUNTPOINT/<domain>/<blob>: read-only files whose bytes come from",
      "'lazypull daemon --device shim:SOCKET', which connects to --socket and answers the",
      "same OPEN, READ and CLOSE requests it answers for the kernel. Looking up a blob",
      "sends OPEN (its size is the daemon's copen); reading a range that is not cached",
      "yet sends READ and waits for the daemon to write it. 'lazypull mount --shim",
      "MOUNTPOINT' then mounts an image with the kernel's own EROFS driver on top of",
      "these files (file-backed, no loop devices).",
      "",
      "Cached ranges persist in --cache-dir (<volume>/<blob>, sparse; a blob whose size",
      "changes is discarded), across restarts of the shim and of the daemon.",
      "",
      "Failover, as the kernel's: when the daemon dies its objects close but pending reads",
      "wait; a new daemon that takes the device socket back from a holder writes",
      "'restore' and every waiting read completes. When every copy of the device socket",
      "is gone (no holder), waiting and later reads fail with EIO until remounted.",
      "",
      "One device at a time: another daemon gets EBUSY while one is connected. Stop with",
      "Ctrl-C or SIGTERM: waiting reads get EIO, the FUSE mount is unmounted. A mountpoint",
      "left behind by a killed shim is cleaned up on start. libfuse runs multi-threaded (a",
      "read waiting for a fetch never holds up the others); reads are at most 128 KiB.",
    })
final class ShimCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(ShimCommand.class);

  @Option(names = "--mountpoint", required = true, paramLabel = "DIR",
      description = "Where to mount the shim (created if missing).")
  Path mountpoint;

  @Option(names = "--cache-dir", required = true, paramLabel = "DIR",
      description = "Where cached blob ranges live (created if missing; needs user xattrs).")
  Path cacheDir;

  @Option(names = "--socket", required = true, paramLabel = "PATH",
      description = "The device socket the daemon connects to (mode 0600; a stale one is replaced).")
  Path socket;

  @Option(names = {"-o", "--fuse-option"}, paramLabel = "OPT[,OPT...]",
      description = "Extra FUSE mount options (repeatable), e.g. max_read=65536.")
  List<String> fuseOptions = new ArrayList<>();

  @Option(names = "--fuse-debug", description = "libfuse's debug output on stderr.")
  boolean fuseDebug;

  @Override
  public Integer call() throws Exception {
    Files.createDirectories(cacheDir);
    FuseShim shim = FuseShim.start(mountpoint, cacheDir, socket, new FuseShim.Options(fuseOptions, fuseDebug));
    AtomicBoolean hookRan = new AtomicBoolean();
    CountDownLatch stopped = new CountDownLatch(1);
    Thread hook = new Thread(() -> {
      hookRan.set(true);
      log.info("stopping: unmounting {}", shim.mountpoint());
      shim.close();
      stopped.countDown();
    }, "shim-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    log.info("shim ready: mount images with 'lazypull mount --shim {}', serve them with 'lazypull daemon --device shim:{}'",
        shim.mountpoint(), shim.shim().socket());
    shim.awaitTermination();
    if (!hookRan.get()) {
      // The FUSE loop ended without us: someone unmounted it from outside.
      log.warn("{} was unmounted from outside: stopping", shim.mountpoint());
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
        shim.close();
        return 0;
      } catch (IllegalStateException e) {
        // the JVM began shutting down meanwhile: the hook does it
      }
    }
    stopped.await();
    return 0;
  }
}
