package io.lazypull.cli;

import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "up", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Mount an image served on demand, with everything it needs, in the foreground.",
      "",
      "Starts a holder, the fuse-shim and the daemon as child processes, mounts the image",
      "on TARGET, and stays in the foreground. If the daemon dies it is started again and",
      "takes the device back from the holder: reads in flight complete. Ctrl-C (SIGINT) or",
      "SIGTERM unmounts TARGET and stops everything it started.",
      "",
      "Layout under --cache-dir: shim/ (the shim's mountpoint), blobs/ (cached blob",
      "ranges, kept across runs), state/ (the daemon's), run/ (sockets).",
    })
final class UpCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(UpCommand.class);

  @Option(names = "--backend", required = true, paramLabel = "URI", description = "Where the blobs are (see 'lazypull daemon --help').")
  String backend;

  @Option(names = "--fsid", required = true, paramLabel = "DIGEST", description = "The image: its meta blob's sha256.")
  String fsid;

  @Option(names = "--domain", paramLabel = "NAME", description = "The image's domain (default: the fsid).")
  String domain;

  @Option(names = "--cache-dir", paramLabel = "DIR", defaultValue = "/var/cache/lazypull",
      description = "Where the cache, sockets and the shim's mountpoint live (default: ${DEFAULT-VALUE}).")
  Path cacheDir;

  @Option(names = "--daemon-arg", paramLabel = "ARG", description = "Extra argument for the daemon (repeatable), e.g. --daemon-arg=--fetch-size=262144.")
  List<String> daemonArgs = new ArrayList<>();

  @Parameters(index = "0", paramLabel = "TARGET", description = "Where to mount the image.")
  Path target;

  private final CountDownLatch stopped = new CountDownLatch(1);
  private volatile boolean stopping;

  @Override
  public Integer call() throws Exception {
    Path dir = cacheDir.toAbsolutePath();
    Path run = Files.createDirectories(dir.resolve("run"));
    Path shimDir = Files.createDirectories(dir.resolve("shim"));
    Path blobs = Files.createDirectories(dir.resolve("blobs"));
    Path state = Files.createDirectories(dir.resolve("state"));
    Path holderSock = run.resolve("holder.sock");
    Path shimSock = run.resolve("shim.sock");
    Path ready = run.resolve("daemon.ready");
    if (!Files.isDirectory(target)) {
      throw new IllegalArgumentException("mount target " + target + " is not a directory");
    }

    Child holder = Child.lazypull("holder", "64m", List.of("holder", "--socket", holderSock.toString()));
    Child shim = Child.lazypull("shim", "256m", List.of("shim", "--mountpoint", shimDir.toString(),
        "--cache-dir", blobs.toString(), "--socket", shimSock.toString()));
    List<String> daemonCmd = new ArrayList<>(List.of("daemon", "--device", "shim:" + shimSock,
        "--holder", holderSock.toString(), "--backend", backend, "--state-dir", state.toString(),
        "--ready-file", ready.toString()));
    if (domain != null) {
      daemonCmd.addAll(List.of("--domain", domain + "=" + backend));
    }
    daemonCmd.addAll(daemonArgs);
    Child[] daemon = {null};
    Runtime.getRuntime().addShutdownHook(new Thread(() -> tearDown(holder, shim, daemon[0], shimDir), "up-shutdown"));

    holder.start();
    await("the holder", () -> Files.exists(holderSock), holder);
    shim.start();
    await("the shim's FUSE mount", () -> isFuseMounted(shimDir), shim);
    Files.deleteIfExists(ready);
    daemon[0] = Child.lazypull("daemon", "512m", daemonCmd).start();
    await("the daemon", () -> Files.exists(ready), daemon[0]);

    List<String> mountArgs = new ArrayList<>(List.of("--shim", shimDir.toString(), "--fsid", fsid));
    if (domain != null) {
      mountArgs.addAll(List.of("--domain", domain));
    }
    mountArgs.add(target.toString());
    MountCommand mount = new MountCommand();
    picocli.CommandLine cl = new picocli.CommandLine(mount);
    cl.parseArgs(mountArgs.toArray(new String[0]));
    mount.call();
    log.info("up: {} mounted on {}; Ctrl-C to unmount and stop", fsid, target);

    // Supervise: restart the daemon when it dies (it takes the device back from the holder).
    int restarts = 0;
    while (!stopping) {
      if (stopped.getCount() == 0) {
        break;
      }
      if (!holder.isAlive() || !shim.isAlive()) {
        log.error("the {} exited ({}): the mount cannot be served any more; stopping",
            holder.isAlive() ? "shim" : "holder", holder.isAlive() ? shim.exitValue() : holder.exitValue());
        return 1;
      }
      if (!daemon[0].isAlive()) {
        restarts++;
        log.warn("daemon exited with {}; starting it again (restart {})", daemon[0].exitValue(), restarts);
        Files.deleteIfExists(ready);
        daemon[0] = Child.lazypull("daemon", "512m", daemonCmd).start();
      }
      Thread.sleep(100);
    }
    return 0;
  }

  private void tearDown(Child holder, Child shim, Child daemon, Path shimDir) {
    stopping = true;
    stopped.countDown();
    try {
      if (Mounts.isMountPoint(target)) {
        try {
          Mounts.umount(target, 0);
        } catch (ErrnoException e) {
          log.warn("{} is busy ({}); detaching it lazily", target, e.getMessage());
          Mounts.umount(target, Mounts.MNT_DETACH);
        }
      }
    } catch (IOException e) {
      log.warn("unmounting {}: {}", target, e.getMessage());
    }
    if (daemon != null) {
      daemon.stop(10);
    }
    shim.stop(10);
    try {
      if (isFuseMounted(shimDir)) {
        Mounts.umount(shimDir, Mounts.MNT_DETACH);
      }
    } catch (IOException e) {
      log.warn("unmounting the shim at {}: {}", shimDir, e.getMessage());
    }
    holder.stop(5);
    log.info("up: stopped");
  }

  static boolean isFuseMounted(Path dir) {
    try {
      Mounts.MountInfo mi = Mounts.mountInfo(dir);
      return mi != null && mi.fsType().startsWith("fuse");
    } catch (IOException e) {
      return false;
    }
  }

  private static void await(String what, BooleanSupplier ready, Child child) throws Exception {
    for (int i = 0; i < 600; i++) { // 60 s: a JVM start under load, a FUSE mount
      if (ready.getAsBoolean()) {
        return;
      }
      if (!child.isAlive()) {
        throw new IOException(child.name() + " exited with " + child.exitValue() + " before " + what + " was ready");
      }
      Thread.sleep(100);
    }
    throw new IOException(what + " was not ready within 60 s");
  }
}
