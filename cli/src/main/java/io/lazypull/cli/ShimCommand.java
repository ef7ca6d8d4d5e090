package io.lazypull.cli;

import io.lazypull.shim.fanotify.FanotifyRelay;
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
      "changes is discarded), across restarts of the shim and of the daemon. --cache-size",
      "bounds them: least recently used windows are evicted (punched), never a range a",
      "reader is using; blobs no mount uses are removed after --cache-grace.",
      "",
      "Failover, as the kernel's: when the daemon dies its objects close but pending reads",
      "wait; a new daemon that takes the device socket back from a holder writes",
      "'restore' and every waiting read completes. When every copy of the device socket",
      "is gone (no holder), waiting and later reads fail with EIO until remounted. A read",
      "(or lookup) that no daemon answers within --daemon-timeout fails with EIO; a",
      "daemon that serves answers each READ within its own --read-timeout.",
      "",
      "One device at a time: another daemon gets EBUSY while one is connected. Stop with",
      "Ctrl-C or SIGTERM: waiting reads get EIO, the FUSE mount is unmounted. A mountpoint",
      "left behind by a killed shim is cleaned up on start. libfuse runs multi-threaded (a",
      "read waiting for a fetch never holds up the others); reads are at most 128 KiB.",
      "",
      "--frontend fanotify (Linux 6.14+): no FUSE mount. The shim relays fanotify",
      "pre-content events (FAN_PRE_ACCESS) on its own cache files to the same daemon:",
      "'lazypull mount --frontend fanotify --cache-dir DIR' asks it (control socket",
      "DIR/.relay.sock) for the meta blob, fetched whole, and the data blobs, sparse and",
      "marked, then mounts EROFS file-backed on them. Reads of cached data never leave",
      "the kernel. It needs a holder (--holder): the holder keeps a copy of its fanotify",
      "group, so that if the relay dies, reads of data not fetched yet wait for a new",
      "relay (which takes the group over) or get EIO, never the zeros of a sparse cache",
      "file. It refuses to stop while such mounts exist; see docs/fanotify.md.",
    })
final class ShimCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(ShimCommand.class);

  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--frontend", paramLabel = "fuse|fanotify", defaultValue = "fuse",
      description = "Where READ requests come from: FUSE reads of MOUNTPOINT (default), or fanotify"
          + " pre-content events on the cache files (no mount).")
  String frontend;

  @Option(names = "--mountpoint", paramLabel = "DIR",
      description = "Where to mount the shim (created if missing; --frontend fuse).")
  Path mountpoint;

  @Option(names = "--cache-dir", required = true, paramLabel = "DIR",
      description = "Where cached blob ranges live (created if missing; needs user xattrs).")
  Path cacheDir;

  @Option(names = "--socket", required = true, paramLabel = "PATH",
      description = "The device socket the daemon connects to (mode 0600; a stale one is replaced).")
  Path socket;

  @Option(names = "--holder", paramLabel = "PATH",
      description = "The holder's socket ('lazypull holder --socket PATH'), which keeps the fanotify group"
          + " across relay restarts (--frontend fanotify: required).")
  Path holder;

  @Option(names = "--daemon-timeout", paramLabel = "DURATION", defaultValue = "60s",
      converter = BackendArgs.DurationConverter.class,
      description = "Longest a read or a lookup waits for the daemon's answer before it fails with EIO: the"
          + " bound when no daemon answers at all (keep it above the daemon's --read-timeout plus a restart;"
          + " default: ${DEFAULT-VALUE}).")
  java.time.Duration daemonTimeout;

  @Option(names = {"-o", "--fuse-option"}, paramLabel = "OPT[,OPT...]",
      description = "Extra FUSE mount options (repeatable), e.g. max_read=65536.")
  List<String> fuseOptions = new ArrayList<>();

  @Option(names = "--fuse-debug", description = "libfuse's debug output on stderr.")
  boolean fuseDebug;

  @picocli.CommandLine.Mixin CacheOptions cacheOptions = new CacheOptions();

  @picocli.CommandLine.Mixin OpsOptions ops = new OpsOptions();

  @Override
  public Integer call() throws Exception {
    checkTimeout();
    switch (frontend) {
      case "fuse":
        if (mountpoint == null) {
          throw new picocli.CommandLine.ParameterException(spec.commandLine(),
              "--frontend fuse needs --mountpoint DIR");
        }
        return runFuse();
      case "fanotify":
        if (mountpoint != null || !fuseOptions.isEmpty() || fuseDebug) {
          throw new picocli.CommandLine.ParameterException(spec.commandLine(),
              "--mountpoint, -o and --fuse-debug are FUSE options; --frontend fanotify mounts nothing");
        }
        if (holder == null) {
          throw new picocli.CommandLine.ParameterException(spec.commandLine(),
              "--frontend fanotify needs --holder PATH (a 'lazypull holder'): without one, the relay's death would"
                  + " let reads of data not fetched yet return zeros");
        }
        return runFanotify();
      default:
        throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--frontend must be fuse or fanotify, not '" + frontend + "'");
    }
  }

  private void checkTimeout() {
    if (daemonTimeout.toMillis() < 1) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--daemon-timeout must be at least 1ms");
    }
  }

  private io.lazypull.shim.CacheBudget.Config budget(boolean fanotify) throws java.io.IOException {
    try {
      return cacheOptions.config(cacheDir, fanotify);
    } catch (picocli.CommandLine.TypeConversionException e) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
  }

  private Integer runFanotify() throws Exception {
    Files.createDirectories(cacheDir);
    String why = io.lazypull.sys.Fanotify.probePreContent(cacheDir);
    if (why != null) {
      throw new IllegalStateException("fanotify pre-content events do not work here (" + why
          + "): use --frontend fuse");
    }
    FanotifyRelay relay = FanotifyRelay.start(cacheDir, socket, holder, daemonTimeout,
        budget(true));
    OpsServer server = ops.start(OpsViews.shim(relay.shim(), relay, null));
    RelayStopper stopper = new RelayStopper(relay);
    stopper.install();
    log.info("relay ready: mount images with 'lazypull mount --frontend fanotify --cache-dir {}', serve them with"
        + " 'lazypull daemon --device shim:{}'", relay.shim().cacheDir(), relay.shim().socket());
    stopper.awaitStopped();
    if (server != null) {
      server.close();
    }
    return 0;
  }

  /** A FUSE shim and its ops server (if asked for), started and serving. */
  record FuseFront(FuseShim shim, OpsServer ops) implements AutoCloseable {
    /** Stops serving metrics, fails waiting reads, unmounts. */
    @Override
    public void close() {
      if (ops != null) {
        ops.close();
      }
      log.info("stopping: unmounting {}", shim.mountpoint());
      shim.close();
    }
  }

  /**
   * Parses {@code args} ('shim --frontend fuse ...', as for a child process, with --config
   * applied) and starts that FUSE shim in this JVM: 'up' runs its shim so, one JVM fewer.
   */
  static FuseFront startInThisProcess(List<String> args) throws Exception {
    picocli.CommandLine cl = Main.newCommandLine(args.toArray(new String[0])); // the shim command alone
    if (Main.config != null) {
      cl.setDefaultValueProvider(Main.config.defaults(null));
    }
    picocli.CommandLine.ParseResult parsed = cl.parseArgs(args.toArray(new String[0]));
    ShimCommand cmd = (ShimCommand) parsed.subcommand().commandSpec().userObject();
    if (!cmd.frontend.equals("fuse") || cmd.mountpoint == null) {
      throw new IllegalArgumentException("only a FUSE shim runs in this process: " + args);
    }
    cmd.checkTimeout();
    return cmd.startFuse();
  }

  private FuseFront startFuse() throws Exception {
    Files.createDirectories(cacheDir);
    FuseShim shim = FuseShim.start(mountpoint, cacheDir, socket,
        new FuseShim.Options(fuseOptions, fuseDebug, daemonTimeout, budget(false)));
    try {
      return new FuseFront(shim, ops.start(OpsViews.shim(shim.shim(), null, shim.mountpoint().toString())));
    } catch (java.io.IOException | RuntimeException e) {
      shim.close();
      throw e;
    }
  }

  private Integer runFuse() throws Exception {
    FuseFront front = startFuse();
    FuseShim shim = front.shim();
    AtomicBoolean hookRan = new AtomicBoolean();
    CountDownLatch stopped = new CountDownLatch(1);
    Thread hook = new Thread(() -> {
      hookRan.set(true);
      front.close();
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
        front.close();
        return 0;
      } catch (IllegalStateException e) {
        // the JVM began shutting down meanwhile: the hook does it
      }
    }
    stopped.await();
    return 0;
  }
}
