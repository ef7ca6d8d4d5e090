package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentLinkedQueue;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * How long reads stall when the daemon dies: readers read random 128 KiB ranges of a large
 * image (cold: every range is fetched), while the daemon is SIGKILLed again and again. After a
 * kill a new daemon either starts cold (a supervisor runs the same command; the stall includes
 * a JVM start), starts cold with a class-data archive ({@link Cds}), or a standby that was
 * already started takes over. The three rotate, kill by kill, on the same mount.
 */
@Command(name = "failover", mixinStandardHelpOptions = true,
    description = {
      "Read stalls around daemon kills: cold restart (with and without CDS) against hot standby.",
      "Readers read random ranges of a big image (cold) while the daemon is SIGKILLed every",
      "--interval-ms; kills rotate between a cold restart, a cold restart whose JVM maps a",
      "class-data archive (AppCDS, as the launcher sets up), and a take-over by a waiting",
      "standby. Prints per-read latency (p50/p99/max) for reads in flight at or started",
      "within 2 s after a kill, per kill stall (the longest such read), and a baseline.",
      "--backend s3proxy serves the image from S3Proxy on loopback (run it as 'ci/bench",
      "failover'): the archive then holds the S3 client's classes, as the launcher's for S3.",
    })
final class BenchFailoverCommand implements Callable<Integer> {
  @Option(names = "--size-mib", defaultValue = "1536", description = "Image size (default: ${DEFAULT-VALUE}).")
  int sizeMib;

  @Option(names = "--kills", defaultValue = "10", description = "Kills per mode (default: ${DEFAULT-VALUE}).")
  int kills;

  @Option(names = "--interval-ms", defaultValue = "3000", description = "Time between kills (default: ${DEFAULT-VALUE}).")
  int intervalMs;

  @Option(names = "--readers", defaultValue = "2", description = "Reader threads (default: ${DEFAULT-VALUE}).")
  int readers;

  @Option(names = "--backend", defaultValue = "file", paramLabel = "file|s3proxy",
      description = "Where the daemons fetch from: a directory (file://) or S3Proxy on loopback"
          + " (default: ${DEFAULT-VALUE}).")
  String backendKind;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = "Scratch directory, kept afterwards (default: a new one in /var/tmp, removed after)."
          + " Wiped and made anew, mode 0700; refused if it is not a directory of ours that only we"
          + " can write, or if another user could replace it or a directory above it.")
  Path workDir;

  private static final long WINDOW_NANOS = 2_000_000_000L;
  /** The daemon's fetch size here: each read touches a window never read before, so it is cold. */
  private static final int FETCH = 128 * 1024;
  private static final int READ = 4096;
  /** Each reader reads every 20 ms, so that the image lasts through the kills. */
  private static final long PACE_NANOS = 20_000_000L;

  /** One read: when it started and ended (System.nanoTime). */
  private record Sample(long start, long end) {
    double millis() {
      return (end - start) / 1e6;
    }
  }

  @Override
  public Integer call() throws Exception {
    return WorkDirs.use(workDir, "lazypull-bench-failover-", this::measure);
  }

  private int measure(Path work) throws Exception {
    if (!backendKind.equals("file") && !backendKind.equals("s3proxy")) {
      throw new IllegalArgumentException("--backend is file or s3proxy, not '" + backendKind + "'");
    }
    if (backendKind.equals("s3proxy") && !BenchBackendsCommand.s3ProxyPresent()) {
      throw new IllegalArgumentException("--backend s3proxy: S3Proxy is not on the class path; run 'ci/bench failover'");
    }
    Path src = Files.createDirectories(work.resolve("src"));
    Random rnd = new Random(7);
    byte[] buf = new byte[1 << 20];
    try (OutputStream o = Files.newOutputStream(src.resolve("data.bin"))) {
      for (int i = 0; i < sizeMib; i++) {
        rnd.nextBytes(buf);
        o.write(buf);
      }
    }
    Path backend = Files.createDirectories(work.resolve("backend"));
    Path meta = work.resolve("meta.img");
    // Chunks (the unit of piece verification, so of every fetch) as small as the fetch size:
    // otherwise one fetch fills a whole 1 MiB chunk and most later reads are warm.
    MkfsResult image = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(FETCH).blobDir(backend).build().build(src, meta);
    Files.copy(meta, backend.resolve(image.fsid()), StandardCopyOption.REPLACE_EXISTING);
    BenchReadCommand.run("rm", "-rf", src.toString());

    String uri = "file://" + backend;
    Map<String, String> env = Map.of();
    io.lazypull.backend.loopback.S3ProxyServer s3 = null;
    if (backendKind.equals("s3proxy")) {
      s3 = BenchS3ProxyCommand.start(work.resolve("s3"), "bench");
      uri = s3.uri("bench/blobs/");
      env = BenchS3ProxyCommand.env(s3);
      try (var blobs = Files.list(backend)) {
        BenchS3ProxyCommand.push(uri, env, blobs.toList());
      }
    }
    try {
      return measure(work, image, uri, env);
    } finally {
      if (s3 != null) {
        s3.close();
      }
    }
  }

  private int measure(Path work, MkfsResult image, String uri, Map<String, String> env) throws Exception {
    PrintStream out = System.out;
    // The archive for this class path, made here so that both cold modes start the same jar; with
    // the S3 client's classes when the daemons fetch from S3 (as the launcher's S3 archive).
    Path cds = Cds.dump(work.resolve("lazypull.jsa"),
        uri.startsWith("s3:") ? List.of("--domain", "s3=" + uri) : List.of());
    List<Long> coldKills = new ArrayList<>();
    List<Long> cdsKills = new ArrayList<>();
    List<Long> hotKills = new ArrayList<>();
    ConcurrentLinkedQueue<Sample> samples = new ConcurrentLinkedQueue<>();
    try (Stack stack = new Stack(work.resolve("serve"), uri).withQuietLogFiles()) {
      stack.env.putAll(env);
      // Small fetches: each random read needs the daemon, so a dead daemon shows at once.
      stack.daemonArgs.addAll(List.of("--fetch-size", Integer.toString(FETCH)));
      stack.startHolder().startShim().startDaemon();
      Path mnt = Files.createDirectories(work.resolve("mnt"));
      stack.mount(image.fsid(), null, mnt);
      Path data = mnt.resolve("data.bin");
      long size = Files.size(data);
      List<Long> windows = new ArrayList<>();
      for (long w = 0; w < size / FETCH; w++) {
        windows.add(w);
      }
      java.util.Collections.shuffle(windows, new Random(11));
      java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
      stopReaders = false;
      List<Thread> threads = new ArrayList<>();
      for (int r = 0; r < readers; r++) {
        Thread t = new Thread(() -> read(data, windows, next, samples), "reader-" + r);
        t.start();
        threads.add(t);
      }
      for (int k = 0; k < 3 * kills; k++) {
        int mode = k % 3; // 0: cold restart, 1: cold restart with class-data sharing, 2: standby
        if (k > 0 && mode != 0) {
          // The restarted daemon serves before anything else starts: a standby's JVM start
          // competing for the CPUs would lengthen the restart being measured.
          Stack.await("daemon " + stack.daemonStarts, stack::daemonReady, stack.daemon);
        }
        Child standby = mode == 2 ? stack.startStandby() : null;
        Thread.sleep(intervalMs);
        long at = System.nanoTime();
        stack.daemon.kill();
        if (mode == 2) {
          stack.daemon = standby; // it takes over by itself
          hotKills.add(at);
        } else {
          stack.daemonCds(mode == 1 ? cds : null);
          stack.launchDaemon(); // a supervisor starts the same command again
          (mode == 1 ? cdsKills : coldKills).add(at);
        }
      }
      Thread.sleep(intervalMs);
      stopReaders = true;
      for (Thread t : threads) {
        t.join();
      }
      stack.umount(mnt);
    }

    List<Sample> all = new ArrayList<>(samples);
    out.printf("%d cold %d KiB reads (each in a %d KiB fetch window never read before) of a %d MiB image from %s,%n"
        + "%d readers, %d kills per mode, one every %d ms%n", all.size(), READ / 1024, FETCH / 1024, sizeMib,
        uri.startsWith("s3:") ? "S3Proxy" : "file://", readers, kills, intervalMs);
    out.printf("%n%-30s %8s %10s %10s %10s   %s%n", "reads", "count", "p50 ms", "p99 ms", "max ms", "per-kill stall p50 / max ms");
    row(out, "around a cold restart", all, coldKills);
    row(out, "around a cold restart, CDS", all, cdsKills);
    row(out, "around a hot-standby takeover", all, hotKills);
    List<Long> kills = new ArrayList<>(coldKills);
    kills.addAll(cdsKills);
    kills.addAll(hotKills);
    List<Double> base = new ArrayList<>();
    for (Sample s : all) {
      if (kills.stream().noneMatch(k -> near(s, k))) {
        base.add(s.millis());
      }
    }
    out.printf("%-30s %8d %10.1f %10.1f %10.1f%n", "far from any kill", base.size(), Stats.median(base),
        Stats.percentile(base, 99), Stats.max(base));
    return 0;
  }

  private volatile boolean stopReaders;

  private void read(Path file, List<Long> windows, java.util.concurrent.atomic.AtomicInteger next,
      ConcurrentLinkedQueue<Sample> samples) {
    ByteBuffer buf = ByteBuffer.allocateDirect(READ);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      int i;
      while (!stopReaders && (i = next.getAndIncrement()) < windows.size()) {
        long off = windows.get(i) * FETCH;
        buf.clear();
        long t0 = System.nanoTime();
        while (buf.hasRemaining() && ch.read(buf, off + buf.position()) > 0) {
          // read the whole range
        }
        long t1 = System.nanoTime();
        samples.add(new Sample(t0, t1));
        long sleep = PACE_NANOS - (t1 - t0);
        if (sleep > 0) {
          Thread.sleep(sleep / 1_000_000, (int) (sleep % 1_000_000));
        }
      }
      if (!stopReaders) {
        System.err.println("reader ran out of cold ranges: use a bigger --size-mib");
      }
    } catch (Exception e) {
      System.err.println("reader failed: " + e);
    }
  }

  /** In flight at the kill, or started within the window after it. */
  private static boolean near(Sample s, long kill) {
    return s.end >= kill && s.start <= kill + WINDOW_NANOS;
  }

  private static void row(PrintStream out, String name, List<Sample> all, List<Long> kills) {
    List<Double> lat = new ArrayList<>();
    List<Double> stalls = new ArrayList<>();
    for (long k : kills) {
      double worst = 0;
      for (Sample s : all) {
        if (near(s, k)) {
          lat.add(s.millis());
          worst = Math.max(worst, s.millis());
        }
      }
      stalls.add(worst);
    }
    out.printf("%-30s %8d %10.1f %10.1f %10.1f   %.0f / %.0f%n", name, lat.size(), Stats.median(lat),
        Stats.percentile(lat, 99), Stats.max(lat), Stats.median(stalls), Stats.max(stalls));
  }
}
