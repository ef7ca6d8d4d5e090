package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Reads a whole image (every byte of every file, {@code tar cf - . | cat > /dev/null}: GNU tar
 * skips file data when it writes to /dev/null itself) through each way of serving it, in
 * interleaved runs, with the page cache dropped before each: the kernel's own file-backed
 * mount of the local blobs, the same through bindfs (a C FUSE passthrough), the shim with
 * every range already in its cache, and lazypull cold from a local backend and from S3Proxy.
 */
@Command(name = "read", mixinStandardHelpOptions = true,
    description = {
      "Read a whole image through each way of serving it and print a table:",
      "native file-backed EROFS, EROFS over bindfs (C FUSE passthrough), over the shim and",
      "over the fanotify relay with a warm disk cache, and lazypull cold from a local",
      "backend (shim and relay) and (when S3Proxy is on the class path: ci/bench read) from",
      "S3. Page cache dropped before each run; runs interleaved; medians. Also the daemon's",
      "and the shim's peak RSS.",
      "Needs root, /dev/fuse and bindfs.",
    })
final class BenchReadCommand implements Callable<Integer> {
  @Option(names = "--tree", paramLabel = "DIR", description = "What to put in the image (default: this JDK).")
  Path tree;

  @Option(names = "--runs", defaultValue = "3", description = "Runs per row (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = "Scratch directory, kept afterwards (default: a new one in /var/tmp, removed after)."
          + " Wiped and made anew, mode 0700; refused if it is not a directory of ours that only we"
          + " can write, or if another user could replace it or a directory above it.")
  Path workDir;

  private final Map<String, List<Double>> seconds = new LinkedHashMap<>();
  private long daemonRss;
  private long shimRss;

  @Override
  public Integer call() throws Exception {
    Path work = workDir != null ? WorkDirs.fresh(workDir) : WorkDirs.temporary("lazypull-bench-read-");
    try {
      return measure(work);
    } finally {
      if (workDir == null) {
        WorkDirs.removeAfterUse(work);
      }
    }
  }

  private int measure(Path work) throws Exception {
    PrintStream out = System.out;
    Path src = tree != null ? tree : Path.of(System.getProperty("java.home")).toRealPath();
    Path backend = Files.createDirectories(work.resolve("backend"));
    Path meta = work.resolve("meta.img");
    MkfsResult image = Mkfs.builder().layout(Layout.CHUNKED).blobDir(backend).build().build(src, meta);
    Files.copy(meta, backend.resolve(image.fsid()), StandardCopyOption.REPLACE_EXISTING);
    Path blob = image.dataBlob().orElseThrow().path();
    long bytes = treeBytes(src);
    out.printf("image of %s: %d inodes, %.1f MiB of file data, data blob %.1f MiB%n", src, image.inodes(),
        bytes / 1048576.0, Files.size(blob) / 1048576.0);

    Path mnt = Files.createDirectories(work.resolve("mnt"));
    Path bind = Files.createDirectories(work.resolve("bindfs"));
    run("bindfs", "-o", "ro", backend.toString(), bind.toString());
    io.lazypull.backend.loopback.S3ProxyServer s3 = null;
    String s3Uri = null;
    Map<String, String> s3Env = Map.of();
    if (BenchBackendsCommand.s3ProxyPresent()) {
      ServerLogs.quiet();
      s3 = io.lazypull.backend.loopback.S3ProxyServer.start(Files.createDirectories(work.resolve("s3")), "bench", "bench-secret");
      s3.createBucket("bench");
      s3Uri = s3.uri("bench/blobs/");
      s3Env = Map.of("AWS_ACCESS_KEY_ID", s3.identity(), "AWS_SECRET_ACCESS_KEY", s3.credential());
      Child push = Child.lazypull("push", "256m", List.of("push", "--backend", s3Uri,
          backend.resolve(image.fsid()).toString(), blob.toString())).env(s3Env).start();
      if (push.process().waitFor() != 0) {
        throw new IOException("push to S3Proxy failed");
      }
    }
    boolean fanotify = io.lazypull.sys.Fanotify.probePreContent(work) == null;
    try (Stack warm = new Stack(work.resolve("warm"), "file://" + backend).withQuietLogFiles();
        Stack warmFan = new Stack(work.resolve("warm-fan"), "file://" + backend).withQuietLogFiles()) {
      fill(warm, image, mnt);
      if (fanotify) {
        fill(warmFan.frontend(Frontends.FANOTIFY), image, mnt);
      }
      for (int r = 0; r < runs; r++) {
        time("native file-backed EROFS", mnt, () -> Mounts.mountErofs(meta, mnt, List.of(blob)));
        time("EROFS over bindfs (C FUSE)", mnt,
            () -> Mounts.mountErofs(bind.resolve(image.fsid()), mnt, List.of(bind.resolve(blob.getFileName()))));
        time("shim (FUSE), warm cache", mnt, () -> warm.mount(image.fsid(), null, mnt));
        if (fanotify) {
          time("fanotify relay, warm cache", mnt, () -> warmFan.mount(image.fsid(), null, mnt));
        }
        cold("shim (FUSE), cold, file://", work.resolve("cold-" + r), "file://" + backend, Map.of(), image, mnt,
            Frontends.FUSE);
        if (fanotify) {
          cold("fanotify relay, cold, file://", work.resolve("cold-fan-" + r), "file://" + backend, Map.of(), image,
              mnt, Frontends.FANOTIFY);
        }
        if (s3Uri != null) {
          cold("shim (FUSE), cold, S3Proxy", work.resolve("cold-s3-" + r), s3Uri, s3Env, image, mnt, Frontends.FUSE);
        }
      }
    } finally {
      Mounts.unmountOrDetach(mnt);
      Mounts.unmountOrDetach(bind);
      if (s3 != null) {
        s3.close();
      }
    }

    out.printf("%n%-34s %10s %10s %10s %10s%n", "read every file (tar | cat)", "median s", "MB/s", "min s", "max s");
    double nativeMedian = Stats.median(seconds.values().iterator().next());
    for (Map.Entry<String, List<Double>> e : seconds.entrySet()) {
      double m = Stats.median(e.getValue());
      out.printf("%-34s %10.3f %10.0f %10.3f %10.3f   x%.2f of native%n", e.getKey(), m, bytes / 1e6 / m,
          Stats.min(e.getValue()), Stats.max(e.getValue()), m / nativeMedian);
    }
    out.printf("%npeak RSS (VmHWM) over the cold runs: daemon %.0f MiB, shim %.0f MiB%n",
        daemonRss / 1024.0, shimRss / 1024.0);
    if (s3Uri == null) {
      out.println("(no S3 row: S3Proxy is not on the class path; 'ci/bench read' adds it)");
    }
    if (!fanotify) {
      out.println("(no fanotify rows: this kernel has no fanotify pre-content events)");
    }
    return 0;
  }

  private interface Mount {
    void mount() throws Exception;
  }

  /** Drop caches, mount, read everything, unmount; record the read time. */
  private void time(String row, Path mnt, Mount mount) throws Exception {
    dropCaches();
    mount.mount();
    try {
      long t0 = System.nanoTime();
      readAll(mnt);
      seconds.computeIfAbsent(row, k -> new ArrayList<>()).add((System.nanoTime() - t0) / 1e9);
    } finally {
      Mounts.umount(mnt, 0);
    }
  }

  /** Starts {@code stack}, mounts the image, reads everything once (into its cache), unmounts. */
  private static void fill(Stack stack, MkfsResult image, Path mnt) throws Exception {
    stack.startShim().startDaemon();
    stack.mount(image.fsid(), null, mnt);
    readAll(mnt);
    stack.umount(mnt);
  }

  private void cold(String row, Path dir, String uri, Map<String, String> env, MkfsResult image, Path mnt,
      Frontends frontend) throws Exception {
    try (Stack cold = new Stack(dir, uri).withQuietLogFiles().frontend(frontend)) {
      cold.env.putAll(env);
      cold.startShim().startDaemon();
      time(row, mnt, () -> cold.mount(image.fsid(), null, mnt));
      daemonRss = Math.max(daemonRss, vmHwmKib(cold.daemon.pid()));
      shimRss = Math.max(shimRss, vmHwmKib(cold.shim.pid()));
    }
    run("rm", "-rf", dir.toString());
  }

  static void readAll(Path dir) throws Exception {
    run("bash", "-c", "cd '" + dir + "' && tar cf - . | cat > /dev/null");
  }

  static void dropCaches() throws IOException {
    run("sync");
    Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3\n");
  }

  static long vmHwmKib(long pid) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    return 0;
  }

  private static long treeBytes(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }

  static void run(String... cmd) throws IOException {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String output = new String(p.getInputStream().readAllBytes());
      if (p.waitFor() != 0) {
        throw new IOException(String.join(" ", cmd) + " failed: " + output.strip());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }
}
