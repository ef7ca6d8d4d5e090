package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.sys.Fanotify;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "up", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Mount an image served on demand, with everything it needs, in the foreground.",
      "",
      "Starts the fuse-shim and the daemon as child processes, mounts the image on TARGET,",
      "and stays in the foreground, keeping the device fd itself (the holder: see 'lazypull",
      "holder --help'). If the daemon dies it is started again and takes the device back:",
      "reads in flight complete. Ctrl-C (SIGINT) or SIGTERM unmounts TARGET and stops",
      "everything it started. With --frontend fanotify the holder is a child process too:",
      "it keeps the relay's fanotify group even if 'up' dies.",
      "",
      "One 'up' per --cache-dir: a second is refused before it touches anything (the",
      "first holds DIR/run/up.lock); after an 'up' that was killed, the next one waits",
      "(at most 60 s) for the processes it had started to exit, then unmounts the dead",
      "image that one left on TARGET and the shim's dead mount, saying so. Any other mount",
      "on TARGET (or a live shim or relay it did not start) is refused, not touched.",
      "",
      "--frontend picks how the kernel's reads reach the daemon: fuse (the fuse-shim, the",
      "default), fanotify (pre-content events on the cache files, Linux 6.14+; the shim",
      "process is the fanotify relay and nothing is FUSE-mounted), kernel (/dev/cachefiles",
      "in on-demand mode, no shim), or auto: kernel if /dev/cachefiles binds, else fanotify",
      "if pre-content events work, else fuse, with one line saying which and why.",
      "",
      "Layout under --cache-dir: shim/ (the shim's mountpoint), blobs/ (cached blob",
      "ranges, kept across runs), state/ (the daemon's), run/ (sockets), fscache/ (kernel).",
      "",
      "Metrics and status of every process: run/lazypull.sock ('lazypull status', 'lazypull",
      "gc'), and --metrics-address. --cache-size bounds blobs/ (not with --frontend kernel).",
    })
final class UpCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(UpCommand.class);

  @Option(names = "--backend", paramLabel = "URI",
      description = "Where the blobs are (see 'lazypull daemon --help'); required here or in --config.")
  String backend;

  @Option(names = "--fsid", required = true, paramLabel = "DIGEST", description = "The image: its meta blob's sha256.")
  String fsid;

  @Option(names = "--domain", paramLabel = "NAME", description = "The image's domain (default: the fsid).")
  String domain;

  @Option(names = "--cache-dir", paramLabel = "DIR", defaultValue = "/var/cache/lazypull",
      description = "Where the cache, sockets and the shim's mountpoint live (default: ${DEFAULT-VALUE}).")
  Path cacheDir;

  @Option(names = "--daemon-arg", paramLabel = "ARG", parameterConsumer = VerbatimArg.class,
      description = "Extra argument for the daemon (repeatable), e.g. --daemon-arg=--fetch-size=262144"
          + " or --daemon-arg=--verbose.")
  List<String> daemonArgs = new ArrayList<>();

  @Option(names = "--prefetch", paramLabel = "all|list|none",
      description = "list: fetch the image's prefetch lists first, ahead of the reads (the ranges its first"
          + " start read, recorded by the daemon in CACHE-DIR/state/prefetch/, one file per blob; copy them"
          + " to other nodes); all: that, then the whole image in the background, never ahead of a read"
          + " (a first start is recorded first: the whole fetch waits until reads pause for 2 s, 30 s at"
          + " most); none: only what is read (default: all; none with --cache-size, where a whole image may"
          + " not fit and prefetched ranges would evict ranges read).")
  String prefetch;

  @Option(names = "--frontend", paramLabel = "fuse|fanotify|kernel|auto", defaultValue = "fuse",
      description = "How reads reach the daemon (default: ${DEFAULT-VALUE}).")
  String frontend;

  @Parameters(index = "0", paramLabel = "TARGET", description = "Where to mount the image.")
  Path target;

  @CommandLine.Mixin CacheOptions cacheOptions = new CacheOptions();

  @Option(names = "--ops-socket", paramLabel = "PATH",
      description = "Metrics (GET /metrics) and status (GET /status) of every process, on this unix socket"
          + " (default: DIR/run/lazypull.sock; 'lazypull status --cache-dir DIR' reads it).")
  Path opsSocket;

  @Option(names = "--metrics-address", paramLabel = "HOST:PORT",
      description = "Serve the same over TCP too, e.g. 127.0.0.1:9464 (unauthenticated: keep it local).")
  String metricsAddress;

  private volatile boolean stopping;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    checkArguments();
    Frontends chosen;
    if (frontend.equals("auto")) {
      Frontends.Choice c = Frontends.detect(cacheDir.toAbsolutePath().resolve("run"));
      System.out.println(c.line());
      log.info("{}", c.line());
      chosen = c.frontend();
    } else {
      chosen = Frontends.parse(frontend);
    }
    if (chosen == Frontends.KERNEL && cacheOptions.cacheSize != null) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--cache-size bounds the shim's and the relay's"
          + " cache; with --frontend kernel the kernel's cachefiles owns the cache (docs/operations.md)");
    }
    Stack stack = new Stack(cacheDir, backend).frontend(chosen).childrenDieWithUs().holderAndShimInThisProcess().lock();
    DeadMounts.clear(stack, target.toAbsolutePath());
    stack.daemonArgs.addAll(List.of("--prefetch", prefetch));
    stack.daemonArgs.addAll(daemonArgs);
    stack.shimArgs.addAll(cacheOptions.args());
    if (Main.config != null) { // the daemon and the shim read the same file (their own keys)
      stack.daemonArgs.addAll(List.of("--config", Main.config.file.toAbsolutePath().toString()));
      stack.shimArgs.addAll(List.of("--config", Main.config.file.toAbsolutePath().toString()));
    }
    if (domain != null) {
      stack.daemonArgs.addAll(List.of("--domain", domain + "=" + backend));
    }
    OpsServer[] opsRef = new OpsServer[1];
    Thread hook = new Thread(() -> {
      stopping = true;
      if (opsRef[0] != null) {
        opsRef[0].close();
      }
      stack.close();
      log.info("up: stopped");
    }, "up-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);

    stack.startHolder().startShim().startDaemon();
    OpsServer ops = OpsServer.start(opsSocket != null ? opsSocket : stack.run.resolve("lazypull.sock"),
        metricsAddress, OpsViews.up(stack));
    opsRef[0] = ops;
    stack.mount(fsid, domain, target.toAbsolutePath());
    log.info("up: {} mounted on {}; Ctrl-C to unmount and stop", fsid, target);

    // Supervise: a dead daemon is started again (it takes the device back from the holder), a
    // dead fanotify relay too (it takes the group back); a dead holder or FUSE shim cannot be
    // recovered from.
    while (!stopping) {
      String fatal = stack.superviseOnce();
      if (fatal != null) {
        log.error("{}: the mount cannot be served any more; stopping", fatal);
        return 1;
      }
      Thread.sleep(100);
    }
    return 0;
  }

  /**
   * Everything that can be wrong with the arguments, before anything is created or started
   * (a bad fsid used to be found by the mount, after the holder, shim and daemon were up).
   */
  private void checkArguments() throws IOException {
    if (backend == null) {
      throw new CommandLine.ParameterException(spec.commandLine(), "give a backend: --backend URI (or 'backend:' in --config)");
    }
    try {
      MountCommand.checkFsid(fsid);
      MountCommand.checkDomain(domain);
      if (!frontend.equals("auto")) {
        Frontends.parse(frontend);
      }
      cacheOptions.config(cacheDir, frontend.equals("fanotify")); // a bad --cache-size before anything starts
      if (prefetch == null && cacheOptions.cacheSize != null) {
        prefetch = "none";
        log.info("--cache-size given: no background prefetch (give --prefetch all to have it anyway)");
      } else if (prefetch == null) {
        prefetch = "all";
      }
      io.lazypull.daemon.DaemonConfig.Prefetch.parse(prefetch);
      Backends.open(backend, BackendOptions.defaults()).close(); // parses the URI; a file:// dir must exist
    } catch (IllegalArgumentException | CommandLine.TypeConversionException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    if (!Files.isDirectory(target)) {
      throw new IOException("mount target " + target + " is not a directory");
    }
    if (frontend.equals("fanotify")) {
      Path dir = cacheDir.toAbsolutePath();
      while (!Files.isDirectory(dir)) { // the cache dir is made later, on the same filesystem
        dir = dir.getParent();
      }
      String why = Fanotify.probePreContent(dir);
      if (why != null) {
        throw new IOException("--frontend fanotify cannot work with --cache-dir " + cacheDir + ": " + why);
      }
    }
  }
}
