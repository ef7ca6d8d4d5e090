package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.containerd.LazyLayers;
import io.lazypull.containerd.SnapshotterServer;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "snapshotter", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "A containerd remote snapshotter (snapshots v1 gRPC on a unix socket).",
      "",
      "Ordinary layers are unpacked by containerd into directories, as containerd's own",
      "overlayfs snapshotter does; lazypull layers (prepared by 'lazypull pull' with the",
      "labels containerd.io/snapshot/lazypull.fsid and .backend) are mounted on demand, one",
      "EROFS mount per layer under ROOT/layers/, shared by every image that has the layer.",
      "A container's rootfs is an overlay mount of its layers.",
      "",
      "The layers are served by one stack under ROOT/stack/ (a holder, the front end chosen",
      "by --frontend, the daemon with one domain per backend), which outlives this process:",
      "a restarted snapshotter takes the running stack over, keeps every snapshot (metadata",
      "in ROOT/metadata.json, replaced atomically) and every mount. It restarts a daemon that",
      "dies (reads in flight complete). SIGTERM stops serving and leaves the stack and the",
      "mounts; --stop unmounts the layers and stops the stack. One snapshotter per ROOT:",
      "another one (or --stop) on the same ROOT exits with an error naming its pid.",
      "",
      "containerd config: [proxy_plugins.lazypull] type = \"snapshot\" address = SOCK;",
      "see dist/containerd/.",
    })
final class SnapshotterCommand implements Callable<Integer>, LazyLayers {
  private static final Logger log = LoggerFactory.getLogger(SnapshotterCommand.class);

  @Option(names = "--address", paramLabel = "SOCK", defaultValue = "/run/lazypull/snapshotter.sock",
      description = "The unix socket containerd connects to (default: ${DEFAULT-VALUE}).")
  Path address;

  @Option(names = "--root", paramLabel = "DIR", defaultValue = "/var/lib/lazypull/snapshotter",
      description = "Snapshots, layer mounts and the stack's cache (default: ${DEFAULT-VALUE}).")
  Path root;

  @Option(names = "--frontend", paramLabel = "fuse|fanotify|kernel|auto", defaultValue = "auto",
      description = "How reads reach the daemon (default: ${DEFAULT-VALUE}; see 'lazypull up --help').")
  String frontend;

  @Option(names = "--daemon-arg", paramLabel = "ARG", parameterConsumer = VerbatimArg.class,
      description = "Extra argument for the daemon (repeatable), e.g. --daemon-arg=--fetch-size=262144"
          + " or --daemon-arg=--verbose.")
  List<String> daemonArgs = new ArrayList<>();

  @Option(names = "--stop", description = "Unmount the layers under --root and stop the stack a snapshotter left running, then exit.")
  boolean stop;

  private Stack stack;
  /** Domain name to backend URI: the daemon serves each backend as one domain. */
  private final Map<String, String> domains = new TreeMap<>();
  private volatile boolean stopping;

  @Override
  public Integer call() throws Exception {
    root = root.toAbsolutePath();
    Path stackDir = root.resolve("stack");
    int longest = stackDir.resolve("run/holder.sock").toString().getBytes(StandardCharsets.UTF_8).length;
    if (longest > 107) {
      throw new IllegalArgumentException("--root " + root + " is too long: the stack's sockets under it would have "
          + longest + "-byte paths, and a unix socket's path has at most 107");
    }
    // One snapshotter per root, for its whole life, before anything under the root is touched:
    // two would serve one metadata.json and supervise one stack against each other.
    Files.createDirectories(root);
    try (PidLock lock = PidLock.take(root.resolve("snapshotter.lock"), pid -> "another 'lazypull snapshotter' (pid "
        + pid + ") is running on " + root + ": stop it first" + (stop ? "" : ", or give this one another --root"))) {
      stack = new Stack(stackDir, null).frontend(chooseFrontend(stackDir)).detached();
      stack.daemonArgs.addAll(daemonArgs);
      return stop ? stopStack(stackDir) : serve();
    }
  }

  /** --stop: unmounts the layers and stops the stack. */
  private int stopStack(Path stackDir) throws Exception {
    stack.adoptRunning();
    unmountLayers();
    stack.close();
    System.out.println("stopped the stack under " + stackDir);
    return 0;
  }

  private int serve() throws Exception {
    synchronized (stack) {
      bringUp();
    }
    SnapshotterServer server = SnapshotterServer.start(address, root, this);
    synchronized (stack) {
      for (Map.Entry<String, String> l : server.lazyLayers().entrySet()) {
        domains.put(domainOf(l.getValue()), l.getValue());
      }
      if (!domains.isEmpty()) {
        ensureDaemon();
      }
      remountLayers(server);
    }
    Thread hook = new Thread(() -> {
      stopping = true;
      server.close();
      log.info("snapshotter: stopped serving; the stack and the layer mounts stay");
    }, "snapshotter-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    log.info("snapshotter: serving {} (root {}, front end {})", address, root, stack.frontend().name().toLowerCase(java.util.Locale.ROOT));
    System.out.println("serving " + address);
    while (!stopping) {
      try {
        synchronized (stack) {
          String fatal = stack.superviseOnce();
          if (fatal != null) {
            log.error("{}: starting the stack again and remounting the layers", fatal);
            restartAll();
            remountLayers(server);
          }
        }
      } catch (Exception e) {
        // serving goes on: the next look tries again
        log.error("supervising the stack: {}", Errors.describe(e));
      }
      Thread.sleep(100);
    }
    return 0;
  }

  /** The front end a running stack uses (recorded in stack/run/frontend), else --frontend's choice. */
  private Frontends chooseFrontend(Path stackDir) throws IOException {
    Path recorded = stackDir.resolve("run").resolve("frontend");
    if (Files.exists(recorded)) {
      return Frontends.parse(Files.readString(recorded).strip());
    }
    Frontends f;
    if (frontend.equals("auto")) {
      Frontends.Choice c = Frontends.detect(Files.createDirectories(stackDir.resolve("run")));
      log.info("{}", c.line());
      f = c.frontend();
    } else {
      f = Frontends.parse(frontend);
    }
    Files.createDirectories(recorded.getParent());
    Files.writeString(recorded, f.name().toLowerCase(java.util.Locale.ROOT) + "\n");
    return f;
  }

  /** Takes over a running stack, or starts one (after clearing what a dead one left). */
  private void bringUp() throws Exception {
    stack.adoptRunning();
    boolean holderAlive = stack.holder != null && stack.holder.isAlive();
    boolean shimAlive = stack.frontend() == Frontends.KERNEL || (stack.shim != null && stack.shim.isAlive());
    if (holderAlive && shimAlive) {
      log.info("took over the running stack: holder {}, {} {}, daemon {}", stack.holder.pid(),
          stack.shim == null ? "no shim" : stack.shim.name(), stack.shim == null ? "" : stack.shim.pid(),
          stack.daemon == null ? "none" : stack.daemon.pid());
      return;
    }
    if (holderAlive && stack.frontend() == Frontends.FANOTIFY) {
      stack.startShim(); // takes its group back from the holder; the mounts stay good
      if (stack.daemon != null) {
        stack.daemon.kill(); // its device was the old relay's socket
        stack.daemon = null;
      }
      return;
    }
    restartAll();
  }

  /** Everything from scratch: mounts served by a dead stack are dead, so they go first. */
  private void restartAll() throws Exception {
    unmountLayers();
    stack.close();
    stack.holder = null;
    stack.shim = null;
    stack.daemon = null;
    stack.startHolder().startShim();
    if (!domains.isEmpty()) {
      ensureDaemon();
    }
  }

  /** Mounts again every layer the snapshots name that is not mounted (a fresh stack, a reboot). */
  private void remountLayers(SnapshotterServer server) {
    for (Map.Entry<String, String> l : server.lazyLayers().entrySet()) {
      Path target = server.layersDir().resolve(l.getKey());
      try {
        Files.createDirectories(target);
        if (!Mounts.isMountPoint(target)) {
          mount(l.getKey(), l.getValue(), target);
          log.info("remounted layer {}", l.getKey());
        }
      } catch (IOException e) {
        log.warn("cannot mount layer {} from {}: {} (tried again when a container needs it)", l.getKey(), l.getValue(), e.getMessage());
      }
    }
  }

  private void unmountLayers() throws IOException {
    Path layers = root.resolve("layers");
    if (!Files.isDirectory(layers)) {
      return;
    }
    try (DirectoryStream<Path> d = Files.newDirectoryStream(layers)) {
      for (Path p : d) {
        if (Mounts.isMountPoint(p)) {
          Mounts.unmountOrDetach(p);
        }
      }
    }
  }

  @Override
  public void mount(String fsid, String backend, Path target) throws IOException {
    String domain = domainOf(backend);
    synchronized (stack) {
      if (!backend.equals(domains.get(domain))) {
        checkBackend(backend);
        domains.put(domain, backend);
        try {
          restartDaemon();
        } catch (IOException e) {
          domains.remove(domain);
          throw new IOException("the daemon does not start with backend " + backend + ": " + e.getMessage(), e);
        }
      } else {
        ensureDaemon();
      }
      try {
        stack.mount(fsid, domain, target);
      } catch (IOException | RuntimeException e) {
        throw e;
      } catch (Exception e) {
        throw new IOException(Errors.describe(e), e); // MountCommand's checked exceptions
      }
    }
  }

  @Override
  public void unmount(Path target) throws IOException {
    synchronized (stack) {
      stack.umount(target);
    }
  }

  /** A URI that names no backend fails here, with its reason, not in the daemon. */
  private static void checkBackend(String uri) throws IOException {
    try (BlobBackend b = Backends.open(uri, BackendOptions.defaults())) {
      // it opens
    } catch (IllegalArgumentException e) {
      throw new IOException("bad backend " + uri + ": " + e.getMessage(), e);
    }
  }

  /** Starts the daemon unless one runs with every domain; waits until it serves. */
  private void ensureDaemon() throws IOException {
    if (stack.daemon != null && stack.daemon.isAlive() && stack.daemon.command().containsAll(domainArgs())) {
      return;
    }
    restartDaemon();
  }

  /**
   * A daemon with the current domains replaces the running one: it takes the device from the
   * holder, and reads in flight complete (the failover every daemon death gets).
   */
  private void restartDaemon() throws IOException {
    if (stack.daemon != null) {
      stack.daemon.stop(15);
    }
    stack.daemonArgs.clear();
    stack.daemonArgs.addAll(daemonArgs);
    stack.daemonArgs.addAll(domainArgs());
    try {
      stack.startDaemon();
    } catch (IOException e) {
      throw e;
    } catch (Exception e) {
      throw new IOException(Errors.describe(e), e);
    }
  }

  private List<String> domainArgs() {
    List<String> args = new ArrayList<>();
    for (Map.Entry<String, String> d : domains.entrySet()) {
      args.add("--domain");
      args.add(d.getKey() + "=" + d.getValue());
    }
    return args;
  }

  /** One domain per backend URI: "b" and 16 hex digits of its sha256 (a stable, safe name). */
  static String domainOf(String backend) {
    try {
      byte[] h = MessageDigest.getInstance("SHA-256").digest(backend.getBytes(StandardCharsets.UTF_8));
      return "b" + HexFormat.of().formatHex(h, 0, 8);
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
