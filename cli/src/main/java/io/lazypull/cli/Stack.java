package io.lazypull.cli;

import io.lazypull.daemon.failover.HolderClient;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The processes that serve images over the fuse-shim, each {@code lazypull <command>} in its
 * own JVM, under one directory:
 *
 * <pre>
 *   DIR/shim/    the shim's FUSE mountpoint      DIR/run/     holder.sock, shim.sock, ready files
 *   DIR/blobs/   the shim's cache (kept)         DIR/state/   the daemon's state (kept)
 *   DIR/logs/    one log file per process (when asked)
 *   DIR/fscache/ the kernel's cachefiles cache (--frontend kernel)
 * </pre>
 *
 * The front end ({@link #frontend(Frontends)}) is the FUSE shim by default; with the fanotify
 * relay the "shim" process is 'lazypull shim --frontend fanotify' on DIR/blobs (no FUSE mount);
 * with the kernel's /dev/cachefiles there is no shim process and the daemon binds the device.
 *
 * Used by {@code up}, {@code demo} and the end-to-end tests, so that all three run exactly
 * what a user runs.
 */
final class Stack implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(Stack.class);

  final Path dir;
  final Path shimDir;
  final Path cacheDir;
  final Path run;
  final Path state;
  final Path holderSock;
  final Path shimSock;
  /** The shim's (or relay's) and the daemon's ops sockets: metrics and status. */
  final Path shimOps;
  final Path daemonOps;
  /** Extra shim arguments (the cache's bound: --cache-size ...). */
  final List<String> shimArgs = new ArrayList<>();
  /** What is mounted, for status: target -> (fsid, domain). */
  final Map<Path, String[]> mounted = new java.util.concurrent.ConcurrentHashMap<>();
  final String backend;
  /** Environment for the daemon (backend credentials). */
  final Map<String, String> env = new HashMap<>();
  /** Extra daemon arguments (--fetch-size, --domain ...). */
  final List<String> daemonArgs = new ArrayList<>();
  /** The class-data archive daemons start with, if set ({@link #daemonCds(Path)}). */
  private Path daemonCds;
  private boolean daemonCdsSet;
  private final List<Path> mounts = new ArrayList<>();
  private Frontends frontend = Frontends.FUSE;
  private Path logs;
  private boolean quiet;
  private boolean dieWithUs;
  private StackLock lock;
  private boolean detached;
  private boolean holderInProcess;
  /** The holder when it runs in this JVM ({@link #holderAndShimInThisProcess()}); else null. */
  private io.lazypull.daemon.failover.HolderServer holderServer;
  private Thread holderThread;
  /** The FUSE shim when it runs in this JVM; else null. */
  private ShimCommand.FuseFront fuseShim;
  Child holder;
  Child shim;
  Child daemon;
  int daemonStarts;
  int daemonRestarts;
  int relayRestarts;

  Stack(Path dir, String backend) throws IOException {
    this.dir = dir.toAbsolutePath();
    this.shimDir = this.dir.resolve("shim");
    try {
      Files.createDirectories(shimDir);
    } catch (java.nio.file.FileAlreadyExistsException e) {
      // the dead FUSE mount of a killed 'up' (stat fails: ENOTCONN): DeadMounts clears it
    }
    this.cacheDir = Files.createDirectories(this.dir.resolve("blobs"));
    this.run = Files.createDirectories(this.dir.resolve("run"));
    this.state = Files.createDirectories(this.dir.resolve("state"));
    this.holderSock = run.resolve("holder.sock");
    this.shimSock = run.resolve("shim.sock");
    this.shimOps = run.resolve("shim-ops.sock");
    this.daemonOps = run.resolve("daemon-ops.sock");
    this.backend = backend;
  }

  /** Daemons start with the class-data archive {@code archive} (null: none). */
  void daemonCds(Path archive) {
    this.daemonCds = archive;
    this.daemonCdsSet = true;
  }

  /** The archive for daemons: as set, else the launcher's for the backends they serve. */
  Path daemonCds() {
    if (daemonCdsSet) {
      return daemonCds;
    }
    List<String> uris = new ArrayList<>();
    uris.add(backend);
    for (int i = 0; i < daemonArgs.size(); i++) {
      String a = daemonArgs.get(i);
      if (a.equals("--domain") && i + 1 < daemonArgs.size()) {
        a = daemonArgs.get(++i);
      } else if (a.startsWith("--domain=")) {
        a = a.substring("--domain=".length());
      } else {
        continue;
      }
      uris.add(a.substring(a.indexOf('=') + 1));
    }
    return Cds.forDaemon(uris);
  }

  /** Serve through {@code f} instead of the FUSE shim. */
  Stack frontend(Frontends f) {
    this.frontend = f;
    return this;
  }

  Frontends frontend() {
    return frontend;
  }

  /** Also write each process's output to DIR/logs/NAME.log. */
  Stack withLogFiles() throws IOException {
    logs = Files.createDirectories(dir.resolve("logs"));
    return this;
  }

  /** Write each process's output only to DIR/logs/NAME.log (the demo keeps its output readable). */
  Stack withQuietLogFiles() throws IOException {
    quiet = true;
    return withLogFiles();
  }

  Path logFile(String name) {
    return dir.resolve("logs").resolve(name + ".log");
  }

  /**
   * Children stop (SIGTERM) when this process dies, even by SIGKILL. Only for a process whose
   * current thread lives as long as the stack (the kernel ties this to the starting thread):
   * 'up' and 'demo' start and restart everything from their main thread.
   */
  Stack childrenDieWithUs() {
    dieWithUs = true;
    return this;
  }

  /**
   * Runs the holder, and the FUSE shim, in this JVM rather than in children of their own; the
   * fanotify relay and its holder stay children. Only for a process whose death stops the stack
   * anyway ({@link #childrenDieWithUs()}: 'up', 'demo'), which already stops when the holder or
   * the FUSE shim dies (nothing can serve the mount then): one process for the three loses no
   * failover, and two JVMs fewer are ~130 MiB less on the node (docs/benchmarks.md). The daemon,
   * which fetches and can crash, stays apart. The fanotify relay's holder keeps its own process:
   * it keeps the relay's group, and refuses to stop, while a mount uses the cache files, so that
   * a relay that dies (and is restarted) never lets a read see the zeros of a hole.
   */
  Stack holderAndShimInThisProcess() {
    holderInProcess = true;
    return this;
  }

  /**
   * Makes DIR this process's ({@link StackLock}), for 'up': refused if another 'up' runs on
   * it; waits until the processes of a killed one have exited. Held until {@link #close()}.
   */
  Stack lock() throws IOException, InterruptedException {
    lock = StackLock.acquire(run);
    return this;
  }

  /**
   * Children outlive this process: each in its own session, its output appended straight to
   * DIR/logs/NAME.log, its pid in DIR/run/NAME.pid, so that a later process can take them over
   * ({@link #adoptRunning}). For the snapshotter, whose restart must not take mounts down.
   */
  Stack detached() throws IOException {
    detached = true;
    logs = Files.createDirectories(dir.resolve("logs"));
    return this;
  }

  /**
   * Takes over the holder, front end and daemon that an earlier detached stack in DIR left
   * running (by their pid files; a pid is taken only if that process's command line names
   * DIR). Those not found stay null.
   */
  void adoptRunning() {
    holder = adopted("holder");
    shim = adopted(frontend == Frontends.FANOTIFY ? "relay" : "shim");
    daemon = adopted("daemon");
  }

  private Child adopted(String name) {
    try {
      long pid = Long.parseLong(Files.readString(run.resolve(name + ".pid")).strip());
      String cmdline = Files.readString(Path.of("/proc", Long.toString(pid), "cmdline")).replace('\0', ' ');
      if (!cmdline.contains(dir.toString())) {
        return null; // the pid was reused
      }
      return ProcessHandle.of(pid).filter(ProcessHandle::isAlive).map(h -> Child.adopt(name, h)).orElse(null);
    } catch (IOException | NumberFormatException e) {
      return null;
    }
  }

  /** Starts {@code c}; detached, records its pid. */
  private Child started(Child c) throws IOException {
    c.start();
    if (detached) {
      Path pid = run.resolve(c.name() + ".pid");
      Path tmp = run.resolve(c.name() + ".pid.tmp");
      Files.writeString(tmp, c.pid() + "\n");
      Files.move(tmp, pid, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
    return c;
  }

  private Child logged(Child c) {
    if (detached) {
      return c.detachedTo(logs.resolve(c.name() + ".log"));
    }
    if (dieWithUs) {
      c.env(java.util.Map.of(Main.DIE_WITH_PARENT, Long.toString(ProcessHandle.current().pid())));
    }
    if (lock != null) {
      c.env(java.util.Map.of(Main.STACK_LOCK, lock.childrenLock.toString()));
    }
    if (logs == null) {
      return c;
    }
    Path f = logs.resolve(c.name() + ".log");
    return quiet ? c.logOnlyTo(f) : c.logTo(f);
  }

  Stack startHolder() throws Exception {
    if (holderInProcess && frontend != Frontends.FANOTIFY && !detached) {
      io.lazypull.daemon.failover.HolderServer server = io.lazypull.daemon.failover.HolderServer.listen(holderSock);
      Thread t = new Thread(() -> {
        try {
          server.serve();
        } catch (IOException e) {
          log.error("the holder stopped: {}", e.getMessage());
        }
      }, "holder");
      t.setDaemon(true);
      t.start();
      holderServer = server;
      holderThread = t;
      return this;
    }
    holder = started(logged(Child.lazypull("holder", "64m", List.of("holder", "--socket", holderSock.toString()))));
    await("the holder", () -> Files.exists(holderSock), holder);
    return this;
  }

  /** True if a front end process serves this stack: the FUSE shim or the fanotify relay. */
  boolean hasShim() {
    return shim != null || fuseShim != null;
  }

  /** True while the holder runs: its child process, or its thread in this JVM. */
  boolean holderAlive() {
    if (holderServer != null) {
      return holderThread.isAlive();
    }
    return holder != null && holder.isAlive();
  }

  /** Starts the front end's process: the FUSE shim, or the fanotify relay; none for the kernel's. */
  Stack startShim() throws Exception {
    if (frontend == Frontends.KERNEL) {
      return this;
    }
    if (frontend == Frontends.FANOTIFY) {
      if (!holderAlive()) {
        startHolder(); // it keeps the relay's fanotify group: without it a dead relay lets zeros through
      }
      List<String> args = new ArrayList<>(List.of("shim", "--frontend", "fanotify",
          "--cache-dir", cacheDir.toString(), "--socket", shimSock.toString(), "--holder", holderSock.toString(),
          "--ops-socket", shimOps.toString()));
      args.addAll(shimArgs);
      shim = started(logged(Child.lazypull("relay", "256m", args)));
      await("the fanotify relay", this::relayListens, shim);
      return this;
    }
    List<String> args = new ArrayList<>(List.of("shim", "--frontend", "fuse", "--mountpoint", shimDir.toString(),
        "--cache-dir", cacheDir.toString(), "--socket", shimSock.toString(), "--ops-socket", shimOps.toString()));
    args.addAll(shimArgs);
    if (holderInProcess && !detached) {
      fuseShim = ShimCommand.startInThisProcess(args);
      return this;
    }
    shim = started(logged(Child.lazypull("shim", "256m", args)));
    await("the shim", () -> isFuseMounted(shimDir) && Files.exists(shimSock), shim);
    return this;
  }

  /** Starts the daemon and waits until it serves. */
  Stack startDaemon() throws Exception {
    Child d = launchDaemon();
    await("the daemon", this::daemonReady, d);
    return this;
  }

  /**
   * Starts the daemon (with the holder, if one runs) without waiting: a supervisor restarting
   * a dead daemon does not wait either.
   */
  Child launchDaemon() throws IOException {
    daemonStarts++;
    Files.deleteIfExists(readyFile()); // left by an earlier run in the same directory
    List<String> args = new ArrayList<>(List.of("daemon", "--device",
        frontend == Frontends.KERNEL ? "kernel" : "shim:" + shimSock, "--state-dir", state.toString(), "--stats-interval", "0",
        "--ready-file", readyFile().toString(), "--ops-socket", daemonOps.toString()));
    if (backend != null) {
      args.addAll(List.of("--backend", backend));
    }
    if (holderAlive()) {
      args.addAll(List.of("--holder", holderSock.toString()));
    }
    if (frontend == Frontends.KERNEL) {
      args.addAll(List.of("--cache-dir", dir.resolve("fscache").toString()));
    }
    args.addAll(daemonArgs);
    daemon = started(logged(Child.lazypull("daemon", "384m", args, daemonCds())).env(env));
    return daemon;
  }

  /**
   * Starts a standby daemon: started and connected, it waits on the holder and takes the
   * device over when the active daemon dies or hands over. Returns once it waits.
   */
  Child startStandby() throws Exception {
    if (!holderAlive()) {
      throw new IllegalStateException("a standby needs the holder");
    }
    List<String> args = new ArrayList<>(List.of("daemon", "--device", "shim:" + shimSock, "--backend", backend,
        "--state-dir", state.toString(), "--stats-interval", "0", "--holder", holderSock.toString(), "--standby"));
    args.addAll(daemonArgs);
    Child standby = logged(Child.lazypull("daemon", "384m", args, daemonCds())).env(env).start();
    try (HolderClient client = HolderClient.connect(holderSock)) {
      await("the standby", () -> {
        try {
          return client.status().matches(".*waiting=[1-9].*");
        } catch (IOException e) {
          return false;
        }
      }, standby);
    }
    return standby;
  }

  /**
   * One look at the children, as a supervisor takes it: a dead daemon is started again (it takes
   * the device back from the holder); a dead fanotify relay too (it takes its group back from the
   * holder, and reads of data not cached wait for it), then the daemon, whose device went with the
   * relay. Returns null, or why the stack cannot serve any more: the holder died, or the FUSE
   * shim (its mount died with it).
   */
  String superviseOnce() throws Exception {
    if (!holderAlive()) {
      return holder == null ? "the holder stopped" : "the holder exited (" + holder.exitValue() + ")";
    }
    if (fuseShim != null && !fuseShim.shim().isRunning()) {
      return "the shim stopped (its FUSE mount " + shimDir + " ended)";
    }
    if (shim != null && !shim.isAlive()) {
      if (frontend != Frontends.FANOTIFY) {
        return "the " + shim.name() + " exited (" + shim.exitValue() + ")";
      }
      relayRestarts++;
      log.warn("the fanotify relay exited with {}; starting a new one, which takes the group over from the holder"
          + " (restart {})", shim.exitValue(), relayRestarts);
      if (daemon != null) {
        daemon.kill(); // its device was the relay's socket
      }
      startShim();
      launchDaemon();
      return null;
    }
    if (daemon != null && !daemon.isAlive()) {
      daemonRestarts++;
      log.warn("daemon exited with {}; starting it again (restart {})", daemon.exitValue(), daemonRestarts);
      launchDaemon();
    }
    return null;
  }

  /** True once the daemon started last serves. */
  boolean daemonReady() {
    return Files.exists(readyFile());
  }

  private Path readyFile() {
    return run.resolve("daemon.ready." + daemonStarts);
  }

  /** Mounts image {@code fsid} (domain: {@code domain}, or the fsid if null) on {@code target}. */
  void mount(String fsid, String domain, Path target) throws Exception {
    List<String> args = new ArrayList<>(List.of("--fsid", fsid));
    switch (frontend) {
      case FUSE:
        args.addAll(List.of("--frontend", "fuse", "--shim", shimDir.toString()));
        break;
      case FANOTIFY:
        args.addAll(List.of("--frontend", "fanotify", "--cache-dir", cacheDir.toString()));
        break;
      case KERNEL:
        args.addAll(List.of("--frontend", "kernel"));
        break;
      default:
        throw new AssertionError(frontend);
    }
    if (domain != null) {
      args.addAll(List.of("--domain", domain));
    }
    args.add(target.toString());
    MountCommand mount = new MountCommand();
    new picocli.CommandLine(mount).parseArgs(args.toArray(new String[0]));
    try {
      mount.mountImage();
    } catch (MetaBlobException e) {
      String why = e.unreadable() ? MetaBlobs.diagnose(backend, e.fsid) : null; // the front end saw EIO
      throw why == null ? e : new IOException(e.getMessage() + "; fetched directly: " + why, e);
    }
    mounts.add(target);
    mounted.put(target, new String[] {fsid, domain == null ? fsid : domain});
  }

  /** Unmounts {@code target} (lazily if it is busy). */
  void umount(Path target) throws IOException {
    Mounts.unmountOrDetach(target);
    mounts.remove(target);
    mounted.remove(target);
  }

  /** Bytes held in the shim's cache files (what SEEK_DATA finds): what was fetched. */
  long cachedBytes() throws IOException {
    return io.lazypull.shim.CacheBudget.measure(cacheDir);
  }

  /** True once a relay answers on the control socket of DIR/blobs (a stale socket file is not enough). */
  private boolean relayListens() {
    try (io.lazypull.shim.fanotify.RelayClient c = io.lazypull.shim.fanotify.RelayClient.connect(cacheDir)) {
      return Files.exists(shimSock);
    } catch (IOException e) {
      return false;
    }
  }

  static boolean isFuseMounted(Path dir) {
    try {
      Mounts.MountInfo mi = Mounts.mountInfo(dir);
      return mi != null && mi.fsType().startsWith("fuse");
    } catch (IOException e) {
      return false;
    }
  }

  /** Waits for {@code ready}; fails early if {@code child} exits first. */
  static void await(String what, BooleanSupplier ready, Child child) throws Exception {
    for (int i = 0; i < 1200; i++) { // 120 s: a JVM start on a loaded machine, a FUSE mount
      if (ready.getAsBoolean()) {
        return;
      }
      if (child != null && !child.isAlive()) {
        throw new IOException(child.name() + " exited with " + child.exitValue() + " before " + what + " was ready");
      }
      Thread.sleep(100);
    }
    throw new IOException(what + " was not ready within 120 s");
  }

  /** Unmounts every image (then the shim) and stops every process, in that order. */
  @Override
  public void close() {
    for (Path m : new ArrayList<>(mounts)) {
      try {
        umount(m);
      } catch (IOException e) {
        log.warn("unmounting {}: {}", m, e.getMessage());
      }
    }
    if (daemon != null) {
      daemon.stop(15);
    }
    if (shim != null) {
      shim.stop(15);
    }
    if (fuseShim != null) {
      fuseShim.close();
    }
    if (shim != null && isFuseMounted(shimDir)) { // ours only: never another stack's shim
      try {
        Mounts.umount(shimDir, Mounts.MNT_DETACH);
      } catch (IOException e) {
        log.warn("unmounting the shim at {}: {}", shimDir, e.getMessage());
      }
    }
    if (holderServer != null) {
      holderServer.close(); // after the daemon and the shim: nothing is left to restore
      holderThread.interrupt();
    }
    if (holder != null && !holder.stopGently(5)) {
      // Never SIGKILLed: it keeps a fanotify group whose files a detached mount still has open.
      log.warn("the holder (pid {}) stays until the files still open in a detached mount of {} are closed; it"
          + " exits by itself then", holder.pid(), cacheDir);
    }
    if (lock != null) {
      lock.close();
    }
  }
}
