package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Credentials;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Reads an image through each way of serving it, for three workloads (every file whole, a
 * start-up: {@code bin/java -version} when the tree is a JDK, random 4 KiB preads), in
 * interleaved runs with the page cache dropped before each: the kernel's own file-backed mount
 * of the local blobs, the same through bindfs (a C FUSE passthrough), peers where installed
 * (squashfuse, casync), lazypull warm (every range in the cache: the shim, the fanotify relay
 * with its blob complete and unmarked, and with it partly cached and still marked), lazypull
 * cold from file:// and S3Proxy (each front end; with and without background prefetch), an image
 * new to a stack that has served another (each front end, file://, without prefetch and with the
 * list the first of those runs recorded), and a
 * full download of the blobs from S3Proxy followed by a native read. Also each process's peak
 * RSS and, for cold runs, the bytes the daemon fetched.
 */
@Command(name = "read", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Read an image through each way of serving it and print a table per workload:",
      "every file (tar | cat), start-up (bin/java -version, when the tree is a JDK) and",
      "random 4 KiB preads. Ways: native file-backed EROFS, EROFS over bindfs, squashfuse",
      "and casync when installed, the shim and the fanotify relay warm (and the relay with",
      "a partly cached, still marked blob), lazypull cold from file:// and (when S3Proxy is",
      "on the class path: ci/bench read) from S3, with no prefetch, --prefetch list (the lists",
      "the run before recorded), --prefetch all (list, then whole), all without a list (a",
      "first start: its reads recorded, the stream after) and all with the stream from the",
      "mount (random reads begun while it ran are set against the same reads without",
      "prefetch: the demand reads' latency under the stream), an image new to a",
      "stack that has served another (\"warm stack, cold image\"; each front end, file:// and",
      "S3), and a full download from S3 (unchecked, and sha256 checked) then a native read.",
      "Page cache dropped before each run; runs interleaved; medians; ratios to native. Also",
      "peak RSS per process, bytes fetched, and the CPU time of daemon, front end and S3Proxy.",
      "Needs root, /dev/fuse and bindfs.",
    })
final class BenchReadCommand implements Callable<Integer> {
  @Option(names = "--tree", paramLabel = "DIR", description = "What to put in the image (default: this JDK).")
  Path tree;

  @Option(names = "--runs", defaultValue = "3", description = "Runs per row (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--random-reads", defaultValue = "2000",
      description = "4 KiB preads in the random workload (default: ${DEFAULT-VALUE}).")
  int randomReads;

  @Option(names = "--workloads", paramLabel = "all,start,random", split = ",", defaultValue = "all,start,random",
      description = "Which workloads (default: ${DEFAULT-VALUE}).")
  List<String> workloads;

  @Option(names = "--only", paramLabel = "REGEX",
      description = "Only the rows whose name matches (native, the base of the ratios, always runs).")
  Pattern only;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = "Scratch directory, kept afterwards (default: a new one in /var/tmp, removed after)."
          + " Wiped and made anew, mode 0700; refused if it is not a directory of ours that only we"
          + " can write, or if another user could replace it or a directory above it.")
  Path workDir;

  private static final Pattern FETCHED = Pattern.compile("stopped: .*bytesFetched=(\\d+)");
  /**
   * The prefetch mode whose whole-blob stream starts at the mount: the daemon is given a list of
   * one piece, so it records none and streams the blob as soon as that piece is in.
   */
  private static final String STREAM_AT_MOUNT = "all, at mount";
  /**
   * The daemon's log lines where the stream of a blob starts and ends: HH:mm:ss.SSS first, after
   * the process's name in brackets.
   */
  static final Pattern STREAM_START = Pattern.compile("(?m)^(?:\\[\\S+\\] )?(\\d\\d:\\d\\d:\\d\\d\\.\\d{3}) "
      + ".*: streaming it whole from byte");
  static final Pattern STREAM_END = Pattern.compile("(?m)^(?:\\[\\S+\\] )?(\\d\\d:\\d\\d:\\d\\d\\.\\d{3}) "
      + ".*(: streamed whole \\(|: the stream broke off)");
  /** USER_HZ: the unit of /proc/PID/stat's times (100 on every Linux ABI that runs a JVM). */
  private static final int CLOCK_TICKS = 100;

  /** workload -> row -> seconds per run. */
  private final Map<String, Map<String, List<Double>>> seconds = new LinkedHashMap<>();
  /** workload -> row -> bytes the daemon fetched per run. */
  private final Map<String, Map<String, List<Long>>> fetched = new LinkedHashMap<>();
  /** workload -> row -> per-read latencies (ms) of the random workload, all runs. */
  private final Map<String, List<Double>> latencies = new LinkedHashMap<>();
  /** Each random read's start (epoch ms) and latency (ms) in the last run of the random workload. */
  private long[] lastReadStarts;
  private double[] lastReadMillis;
  /** Cold rows, random workload: row -> round -> each read's latency (ms), in the workload's order. */
  private final Map<String, Map<Integer, double[]>> readsByRound = new LinkedHashMap<>();
  /** Rows streaming from the mount, random workload: row -> round -> the reads begun while the stream ran. */
  private final Map<String, Map<Integer, boolean[]>> underStream = new LinkedHashMap<>();
  /** The same rows: row -> the stream's seconds per run (to the last read if it ran on). */
  private final Map<String, List<Double>> streamSeconds = new LinkedHashMap<>();
  /** workload -> row -> process -> CPU seconds (user + system) per run, over the workload. */
  private final Map<String, Map<String, Map<String, List<Double>>>> cpu = new LinkedHashMap<>();
  /** process -> peak RSS (KiB). */
  private final Map<String, Long> rss = new TreeMap<>();
  private final List<String> notes = new ArrayList<>();
  private Path src;
  private long treeBytes;
  private List<Path> randomFiles;
  private Path work;

  @Override
  public Integer call() throws Exception {
    return WorkDirs.use(workDir, "lazypull-bench-read-", this::measure);
  }

  private int measure(Path work) throws Exception {
    PrintStream out = System.out;
    src = tree != null ? tree.toRealPath() : Path.of(System.getProperty("java.home")).toRealPath();
    this.work = work;
    Path backend = Files.createDirectories(work.resolve("backend"));
    Path meta = work.resolve("meta.img");
    MkfsResult image = Mkfs.builder().layout(Layout.CHUNKED).blobDir(backend).build().build(src, meta);
    Files.copy(meta, backend.resolve(image.fsid()), StandardCopyOption.REPLACE_EXISTING);
    Path blob = image.dataBlob().orElseThrow().path();
    String blobHex = image.dataBlob().get().sha256Hex();
    treeBytes = treeBytes(src);
    randomFiles = filesOf(src);
    if (!Files.isExecutable(src.resolve("bin/java"))) {
      workloads.remove("start");
      notes.add("no start-up rows: the tree has no bin/java");
    }
    out.printf("image of %s: %d inodes, %.1f MiB of file data, data blob %.1f MiB, meta blob %.2f MiB%n", src,
        image.inodes(), treeBytes / 1048576.0, Files.size(blob) / 1048576.0, Files.size(meta) / 1048576.0);

    Path mnt = Files.createDirectories(work.resolve("mnt"));
    Path bind = Files.createDirectories(work.resolve("bindfs"));
    run("bindfs", "-o", "ro", backend.toString(), bind.toString());
    Path sqfs = null;
    if (installed("squashfuse") && installed("mksquashfs")) {
      sqfs = work.resolve("tree.sqfs");
      run("mksquashfs", src.toString(), sqfs.toString(), "-noappend", "-quiet", "-no-progress");
    } else {
      notes.add("no squashfuse row: squashfuse or mksquashfs is not installed");
    }
    Path casyncStore = null;
    Path casyncIndex = null;
    if (installed("casync")) {
      casyncStore = work.resolve("casync-store");
      casyncIndex = work.resolve("tree.caidx");
      run("casync", "make", "--store=" + casyncStore, casyncIndex.toString(), src.toString());
    } else {
      notes.add("no casync row: casync is not installed");
    }
    io.lazypull.backend.loopback.S3ProxyServer s3 = null;
    String s3Uri = null;
    Map<String, String> s3Env = Map.of();
    if (BenchBackendsCommand.s3ProxyPresent()) {
      s3 = BenchS3ProxyCommand.start(work.resolve("s3"), "bench");
      s3Uri = s3.uri("bench/blobs/");
      s3Env = BenchS3ProxyCommand.env(s3);
      BenchS3ProxyCommand.push(s3Uri, s3Env, List.of(backend.resolve(image.fsid()), blob));
    } else {
      notes.add("no S3 rows: S3Proxy is not on the class path; 'ci/bench read' adds it");
    }
    boolean fanotify = io.lazypull.sys.Fanotify.probePreContent(work) == null;
    if (!fanotify) {
      notes.add("no fanotify rows: this kernel has no fanotify pre-content events");
    }
    String file = "file://" + backend;
    try (Stack warm = new Stack(work.resolve("warm"), file).withQuietLogFiles();
        Stack warmFan = new Stack(work.resolve("warm-fan"), file).withQuietLogFiles();
        Stack marked = new Stack(work.resolve("warm-marked"), file).withQuietLogFiles();
        Running runningShim = new Running(Frontends.FUSE, "shim", file);
        Running runningFan = new Running(Frontends.FANOTIFY, "fanotify", file);
        Running runningShimS3 = s3Uri == null ? null : new Running(Frontends.FUSE, "shim", ", S3Proxy", s3Uri, s3Env);
        Running runningFanS3 = s3Uri == null ? null
            : new Running(Frontends.FANOTIFY, "fanotify", ", S3Proxy", s3Uri, s3Env);
        BlobBackend s3Blobs = s3Uri == null ? null : Backends.open(s3Uri, BackendOptions.builder()
            .credentials(new Credentials(s3.identity(), s3.credential())).build())) {
      if (selected("shim (FUSE), warm")) {
        fill(warm, image, mnt, "all");
      }
      if (fanotify && selected("fanotify, warm (blob complete, unmarked)")) {
        fill(warmFan.frontend(Frontends.FANOTIFY), image, mnt, "all");
      }
      if (fanotify && selected("fanotify, warm (blob partly cached, marked)")) {
        // Partly cached: what start-up and the random reads touch, the rest a hole (still marked).
        marked.frontend(Frontends.FANOTIFY);
        marked.daemonArgs.addAll(List.of("--prefetch", "none"));
        fill(marked, image, mnt, "start", "random");
      }
      runningShim.start(image, mnt);
      if (fanotify) {
        runningFan.start(image, mnt);
      }
      if (s3Uri != null) {
        runningShimS3.start(image, mnt);
        if (fanotify) {
          runningFanS3.start(image, mnt);
        }
        download("warm-up", s3, s3Uri, image.fsid(), blobHex, mnt, true); // loads the S3 client's classes once
        seconds.remove("warm-up");
      }
      for (int r = 0; r < runs; r++) {
        for (String w : workloads) {
          time(w, "native file-backed EROFS (local blobs)", mnt, () -> Mounts.mountErofs(meta, mnt, List.of(blob)));
          time(w, "EROFS over bindfs (C FUSE passthrough)", mnt, () -> Mounts.mountErofs(bind.resolve(image.fsid()), mnt,
              List.of(bind.resolve(blob.getFileName()))));
          if (sqfs != null) {
            Path img = sqfs;
            time(w, "squashfuse (local image)", mnt, () -> run("squashfuse", img.toString(), mnt.toString()));
          }
          if (casyncStore != null) {
            casync(w, casyncStore, casyncIndex, mnt);
          }
          time(w, "shim (FUSE), warm", mnt, () -> warm.mount(image.fsid(), null, mnt));
          if (fanotify) {
            time(w, "fanotify, warm (blob complete, unmarked)", mnt, () -> warmFan.mount(image.fsid(), null, mnt));
            if (!w.equals("all")) { // reading everything would complete it
              time(w, "fanotify, warm (blob partly cached, marked)", mnt, () -> marked.mount(image.fsid(), null, mnt));
            }
          }
          cold(w, "shim, cold, file://", r, file, Map.of(), image, mnt, Frontends.FUSE, "none");
          cold(w, "shim, cold, file://, --prefetch list", r, file, Map.of(), image, mnt, Frontends.FUSE, "list");
          if (fanotify) {
            cold(w, "fanotify, cold, file://", r, file, Map.of(), image, mnt, Frontends.FANOTIFY, "none");
            cold(w, "fanotify, cold, file://, --prefetch list", r, file, Map.of(), image, mnt, Frontends.FANOTIFY,
                "list");
          }
          boolean s3Running = s3Uri != null && (runningShimS3.started || runningFanS3.started);
          if (runningShim.started || runningFan.started || s3Running) {
            MkfsResult fresh = newImage(r, w, backend);
            Path freshMeta = backend.resolve(fresh.fsid());
            Path freshBlob = fresh.dataBlob().orElseThrow().path();
            runningShim.time(w, fresh, mnt);
            runningFan.time(w, fresh, mnt);
            if (s3Running) {
              s3Blobs.put(freshMeta); // not timed: what 'lazypull push' does before a node mounts it
              s3Blobs.put(freshBlob);
              runningShimS3.time(w, fresh, mnt);
              runningFanS3.time(w, fresh, mnt);
              for (Path p : List.of(freshMeta, freshBlob)) { // S3Proxy's file system store: bucket/key
                Files.deleteIfExists(work.resolve("s3/bench/blobs").resolve(p.getFileName().toString()));
              }
            }
            run("rm", "-f", freshMeta.toString(), freshBlob.toString());
          }
          if (s3Uri != null) {
            cold(w, "shim, cold, S3Proxy", r, s3Uri, s3Env, image, mnt, Frontends.FUSE, "none");
            cold(w, "shim, cold, S3Proxy, --prefetch list", r, s3Uri, s3Env, image, mnt, Frontends.FUSE, "list");
            cold(w, "shim, cold, S3Proxy, --prefetch all", r, s3Uri, s3Env, image, mnt, Frontends.FUSE, "all");
            cold(w, "shim, cold, S3Proxy, --prefetch all, no list", r, s3Uri, s3Env, image, mnt, Frontends.FUSE,
                "all, no list");
            cold(w, "shim, cold, S3Proxy, --prefetch all, stream at mount", r, s3Uri, s3Env, image, mnt,
                Frontends.FUSE, STREAM_AT_MOUNT);
            if (fanotify) {
              cold(w, "fanotify, cold, S3Proxy", r, s3Uri, s3Env, image, mnt, Frontends.FANOTIFY, "none");
              cold(w, "fanotify, cold, S3Proxy, --prefetch list", r, s3Uri, s3Env, image, mnt, Frontends.FANOTIFY,
                  "list");
              cold(w, "fanotify, cold, S3Proxy, --prefetch all", r, s3Uri, s3Env, image, mnt, Frontends.FANOTIFY, "all");
              cold(w, "fanotify, cold, S3Proxy, --prefetch all, no list", r, s3Uri, s3Env, image, mnt,
                  Frontends.FANOTIFY, "all, no list");
              cold(w, "fanotify, cold, S3Proxy, --prefetch all, stream at mount", r, s3Uri, s3Env, image, mnt,
                  Frontends.FANOTIFY, STREAM_AT_MOUNT);
            }
            download(w, s3, s3Uri, image.fsid(), blobHex, mnt, false);
            download(w, s3, s3Uri, image.fsid(), blobHex, mnt, true);
          }
        }
      }
    } finally {
      Mounts.unmountOrDetach(mnt);
      Mounts.unmountOrDetach(bind);
      if (s3 != null) {
        s3.close();
      }
    }
    print(out);
    return 0;
  }

  private interface Mount {
    void mount() throws Exception;
  }

  private boolean selected(String row) {
    return only == null || row.startsWith("native") || only.matcher(row).find();
  }

  /** Drop caches, mount, run workload {@code w}, unmount; record the time. */
  private void time(String w, String row, Path mnt, Mount mount) throws Exception {
    if (!selected(row)) {
      return;
    }
    dropCaches();
    mount.mount();
    try {
      record(w, row, workload(w, mnt, row));
    } finally {
      Mounts.unmountOrDetach(mnt);
    }
  }

  private void record(String w, String row, double secs) {
    seconds.computeIfAbsent(w, k -> new LinkedHashMap<>()).computeIfAbsent(row, k -> new ArrayList<>()).add(secs);
  }

  private void recordFetched(String w, String row, long bytes) {
    fetched.computeIfAbsent(w, k -> new LinkedHashMap<>()).computeIfAbsent(row, k -> new ArrayList<>()).add(bytes);
  }

  /**
   * {@link #time}, and the CPU time that {@code stack}'s daemon and front end, and this JVM (the
   * in-process S3Proxy, and the random workload's own reads), spent over it.
   */
  private void timeWithCpu(String w, String row, Stack stack, Path mnt, Mount mount) throws Exception {
    if (!selected(row)) {
      return;
    }
    long[] pids = {stack.daemon.pid(), stack.shim.pid(), ProcessHandle.current().pid()};
    long[] before = new long[pids.length];
    for (int i = 0; i < pids.length; i++) {
      before[i] = cpuTicks(pids[i]);
    }
    time(w, row, mnt, mount);
    String[] names = {"daemon", "front end", "bench JVM"};
    Map<String, List<Double>> m = cpu.computeIfAbsent(w, k -> new LinkedHashMap<>())
        .computeIfAbsent(row, k -> new LinkedHashMap<>());
    for (int i = 0; i < pids.length; i++) {
      m.computeIfAbsent(names[i], k -> new ArrayList<>()).add((cpuTicks(pids[i]) - before[i]) / (double) CLOCK_TICKS);
    }
  }

  /** utime + stime of process {@code pid}, in clock ticks. */
  static long cpuTicks(long pid) throws IOException {
    String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    return Long.parseLong(f[11]) + Long.parseLong(f[12]); // fields 14 and 15 of proc(5)
  }

  /** Runs workload {@code w} on the tree at {@code mnt}; seconds. */
  private double workload(String w, Path mnt, String row) throws Exception {
    long t0 = System.nanoTime();
    switch (w) {
      case "all" -> readAll(mnt);
      case "start" -> run(mnt.resolve("bin/java").toString(), "-version");
      case "random" -> {
        List<Double> lat = latencies.computeIfAbsent(row, k -> new ArrayList<>());
        Random rnd = new Random(42);
        ByteBuffer buf = ByteBuffer.allocateDirect(4096);
        lastReadStarts = new long[randomReads];
        lastReadMillis = new double[randomReads];
        for (int i = 0; i < randomReads; i++) {
          Path f = randomFiles.get(rnd.nextInt(randomFiles.size()));
          long size = Files.size(src.resolve(f));
          long off = (long) rnd.nextInt((int) Math.min(Integer.MAX_VALUE, size / 4096)) * 4096;
          lastReadStarts[i] = System.currentTimeMillis();
          long s = System.nanoTime();
          try (FileChannel ch = FileChannel.open(mnt.resolve(f.toString()), StandardOpenOption.READ)) {
            buf.clear();
            ch.read(buf, off);
          }
          lastReadMillis[i] = (System.nanoTime() - s) / 1e6;
          lat.add(lastReadMillis[i]);
        }
      }
      default -> throw new IllegalArgumentException("unknown workload " + w + " (all, start, random)");
    }
    return (System.nanoTime() - t0) / 1e9;
  }

  /** Starts {@code stack}, mounts the image, runs {@code fills} once (into its cache), unmounts. */
  private void fill(Stack stack, MkfsResult image, Path mnt, String... fills) throws Exception {
    stack.startShim().startDaemon();
    stack.mount(image.fsid(), null, mnt);
    for (String w : fills) {
      if (workloads.contains(w) || w.equals("all")) {
        workload(w, mnt, "fill");
      }
    }
    latencies.remove("fill");
    stack.umount(mnt);
  }

  private void cold(String w, String row, int r, String uri, Map<String, String> env, MkfsResult image, Path mnt,
      Frontends frontend, String prefetch) throws Exception {
    if (!selected(row)) {
      return;
    }
    Path dir = work.resolve("cold-" + r);
    Path daemonLog;
    if (prefetch.equals("list") && !Files.isDirectory(work.resolve("lists").resolve(w))) {
      String note = "'" + row + "' runs were skipped: no run without prefetch recorded a list before them";
      if (!notes.contains(note)) {
        notes.add(note);
      }
      return;
    }
    // A run without prefetch records the image's prefetch lists (at its daemon's stop); runs with
    // prefetch start with those of the last such run of the same workload: a second start.
    // "all, no list": a first start; its reads are recorded, and the stream waits for the
    // recording to end (2 s without a READ), mostly after the workload. "all, at mount": a list of
    // one piece, so nothing is recorded and the stream runs under the workload's own reads.
    // (With a list, the list is fetched first and the stream often begins after the workload.)
    Path lists = work.resolve("lists").resolve(w);
    boolean unlisted = prefetch.equals("all, no list");
    boolean atMount = prefetch.equals(STREAM_AT_MOUNT);
    long t0 = System.currentTimeMillis();
    try (Stack cold = new Stack(dir, uri).withQuietLogFiles().frontend(frontend)) {
      daemonLog = cold.logFile("daemon");
      cold.env.putAll(env);
      cold.daemonArgs.addAll(List.of("--prefetch", unlisted || atMount ? "all" : prefetch));
      if (atMount) {
        Path list = Files.createDirectories(cold.state.resolve("prefetch"))
            .resolve(image.dataBlob().orElseThrow().sha256Hex());
        Files.writeString(list, "# lazypull bench read: one piece, so that the whole-blob stream starts at the mount\n"
            + "0 4096\n");
      } else if (!prefetch.equals("none") && !unlisted && Files.isDirectory(lists)) {
        run("cp", "-r", lists.toString(), cold.state.resolve("prefetch").toString());
      }
      cold.startShim().startDaemon();
      timeWithCpu(w, row, cold, mnt, () -> cold.mount(image.fsid(), null, mnt));
      String front = frontend == Frontends.FUSE ? "shim (FUSE)" : "fanotify relay";
      peak("daemon", cold.daemon.pid());
      peak(front, cold.shim.pid());
      if (cold.holder != null) {
        peak("holder", cold.holder.pid());
      }
    }
    Matcher m = FETCHED.matcher(Files.readString(daemonLog)); // its last words, at exit
    long bytes = -1;
    while (m.find()) {
      bytes = Long.parseLong(m.group(1));
    }
    recordFetched(w, row, bytes);
    if (w.equals("random")) {
      readsByRound.computeIfAbsent(row, k -> new LinkedHashMap<>()).put(r, lastReadMillis);
    }
    if (atMount && w.equals("random")) {
      streamWindow(row, r, Files.readString(daemonLog), t0);
    }
    Path recorded = dir.resolve("state/prefetch");
    if (prefetch.equals("none") && Files.isDirectory(recorded)) {
      run("rm", "-rf", lists.toString());
      Files.createDirectories(lists.getParent());
      run("mv", recorded.toString(), lists.toString());
    }
    run("rm", "-rf", dir.toString());
  }

  /**
   * From the daemon's log of a random-workload run that streamed from the mount: which reads
   * began while the stream ran, and how long it ran (to the last read if it ran on). The log's
   * times are of day, in this machine's zone; {@code since} (epoch ms, before the stack started)
   * dates them.
   */
  private void streamWindow(String row, int r, String log, long since) {
    Matcher start = STREAM_START.matcher(log);
    if (!start.find()) {
      String note = "'" + row + "': a run's daemon did not stream the blob (no 'streaming it whole' in its log)";
      if (!notes.contains(note)) {
        notes.add(note);
      }
      return;
    }
    long from = epochMillis(start.group(1), since);
    Matcher end = STREAM_END.matcher(log);
    long to = end.find(start.end()) ? epochMillis(end.group(1), since) : Long.MAX_VALUE;
    boolean[] under = new boolean[lastReadStarts.length];
    for (int i = 0; i < under.length; i++) {
      under[i] = lastReadStarts[i] >= from && lastReadStarts[i] <= to;
    }
    underStream.computeIfAbsent(row, k -> new LinkedHashMap<>()).put(r, under);
    long last = lastReadStarts[lastReadStarts.length - 1] + 1;
    streamSeconds.computeIfAbsent(row, k -> new ArrayList<>()).add((Math.min(to, last) - from) / 1000.0);
  }

  /** A log line's time of day (HH:mm:ss.SSS) as epoch ms: the first such instant at or after {@code since} - 1 s. */
  static long epochMillis(String timeOfDay, long since) {
    java.time.ZonedDateTime base = java.time.Instant.ofEpochMilli(since - 1000).atZone(java.time.ZoneId.systemDefault());
    java.time.ZonedDateTime t = base.with(java.time.LocalTime.parse(timeOfDay));
    if (t.isBefore(base)) {
      t = t.plusDays(1); // the run crossed midnight
    }
    return t.toInstant().toEpochMilli();
  }

  /**
   * Image number {@code r}/{@code w}: the tree plus a file of random bytes, so that its data blob
   * is one no stack has seen (the tree is linked, not copied, where it can be).
   */
  private MkfsResult newImage(int r, String w, Path backend) throws Exception {
    Path tree = work.resolve("tree-" + r + "-" + w);
    run("rm", "-rf", tree.toString());
    try {
      run("cp", "-al", src.toString(), tree.toString());
    } catch (IOException e) {
      run("rm", "-rf", tree.toString());
      run("cp", "-a", src.toString(), tree.toString()); // another file system
    }
    byte[] salt = new byte[4096];
    new Random().nextBytes(salt);
    Files.write(tree.resolve(".lazypull-bench-salt"), salt);
    Path meta = work.resolve("meta-" + r + "-" + w + ".img");
    MkfsResult image = Mkfs.builder().layout(Layout.CHUNKED).blobDir(backend).build().build(tree, meta);
    Files.move(meta, backend.resolve(image.fsid()), StandardCopyOption.REPLACE_EXISTING);
    run("rm", "-rf", tree.toString());
    return image;
  }

  /**
   * Rows for an image new to a stack that has served another before (its JVMs past their
   * warm-up): what a node that has run containers sees. Two stacks: one without prefetch, which
   * records the image's list, and one with --prefetch list, which is given that list (as a
   * second node would be) before the image is mounted there.
   */
  private final class Running implements AutoCloseable {
    final String plainRow;
    final String listRow;
    final Stack plain;
    final Stack listed;
    boolean started;

    Running(Frontends frontend, String name, String uri) throws IOException {
      this(frontend, name, "", uri, Map.of());
    }

    /** Rows "NAME, warm stack, cold image" + {@code backend} (e.g. ", S3Proxy"). */
    Running(Frontends frontend, String name, String backend, String uri, Map<String, String> env) throws IOException {
      plainRow = name + ", warm stack, cold image" + backend;
      listRow = plainRow + ", --prefetch list";
      String dir = "running-" + name + backend.replaceAll("[^A-Za-z0-9]+", "-");
      plain = new Stack(work.resolve(dir), uri).withQuietLogFiles().frontend(frontend);
      listed = new Stack(work.resolve(dir + "-list"), uri).withQuietLogFiles().frontend(frontend);
      plain.env.putAll(env);
      listed.env.putAll(env);
      plain.daemonArgs.addAll(List.of("--prefetch", "none"));
      listed.daemonArgs.addAll(List.of("--prefetch", "list"));
    }

    /** Starts both stacks and has each serve {@code first} once (every workload). */
    void start(MkfsResult first, Path mnt) throws Exception {
      if (selected(plainRow) || selected(listRow)) {
        fill(plain, first, mnt, "start", "random");
        fill(listed, first, mnt, "start", "random");
        started = true;
      }
    }

    void time(String w, MkfsResult image, Path mnt) throws Exception {
      if (!started) {
        return;
      }
      String blob = image.dataBlob().orElseThrow().sha256Hex();
      timeFetched(w, plainRow, plain, image, mnt);
      Path list = plain.state.resolve("prefetch").resolve(blob);
      for (int i = 0; i < 300 && !Files.exists(list); i++) {
        Thread.sleep(50); // written when the object closes, after the unmount
      }
      if (!Files.exists(list)) {
        notes.add("'" + listRow + "' run skipped: no list was recorded for " + blob);
        return;
      }
      Files.copy(list, Files.createDirectories(listed.state.resolve("prefetch")).resolve(blob),
          StandardCopyOption.REPLACE_EXISTING);
      timeFetched(w, listRow, listed, image, mnt);
    }

    private void timeFetched(String w, String row, Stack stack, MkfsResult image, Path mnt) throws Exception {
      long before = stack.cachedBytes();
      timeWithCpu(w, row, stack, mnt, () -> stack.mount(image.fsid(), null, mnt));
      recordFetched(w, row, stack.cachedBytes() - before);
    }

    @Override
    public void close() {
      plain.close();
      listed.close();
    }
  }

  /**
   * The baseline: download the meta and data blob whole from S3, then a native read; with
   * {@code check}, each blob is hashed as it arrives and checked against its sha256 (as a pull
   * checks a layer, and as lazypull checks every piece).
   */
  private void download(String w, io.lazypull.backend.loopback.S3ProxyServer s3, String uri, String fsid, String blobHex,
      Path mnt, boolean check) throws Exception {
    String row = check ? "download whole blobs from S3Proxy (sha256 checked), then native"
        : "download whole blobs from S3Proxy, then native";
    if (!selected(row)) {
      return;
    }
    Path dir = Files.createDirectories(work.resolve("download"));
    dropCaches();
    long t0 = System.nanoTime();
    try (BlobBackend b = Backends.open(uri, BackendOptions.builder()
        .credentials(new Credentials(s3.identity(), s3.credential())).build())) {
      for (String hex : List.of(fsid, blobHex)) {
        java.security.MessageDigest sha = check ? java.security.MessageDigest.getInstance("SHA-256") : null;
        try (FileChannel ch = FileChannel.open(dir.resolve(hex), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
          b.transferTo(hex, new java.nio.channels.WritableByteChannel() {
            @Override
            public int write(ByteBuffer src) throws IOException {
              if (sha != null) {
                sha.update(src.duplicate());
              }
              int n = src.remaining();
              while (src.hasRemaining()) {
                ch.write(src);
              }
              return n;
            }

            @Override
            public boolean isOpen() {
              return ch.isOpen();
            }

            @Override
            public void close() {}
          });
        }
        if (sha != null && !java.util.HexFormat.of().formatHex(sha.digest()).equals(hex)) {
          throw new IOException("the blob downloaded as " + hex + " has another sha256");
        }
      }
    }
    double fetch = (System.nanoTime() - t0) / 1e9;
    Mounts.mountErofs(dir.resolve(fsid), mnt, List.of(dir.resolve(blobHex)));
    try {
      double read = w.equals("warm-up") ? 0 : workload(w, mnt, "download");
      record(w, row, fetch + read);
    } finally {
      Mounts.unmountOrDetach(mnt);
      latencies.remove("download");
      run("rm", "-rf", dir.toString());
    }
  }

  private void casync(String w, Path store, Path index, Path mnt) throws Exception {
    if (!selected("casync mount (FUSE, lazy, local store)")) {
      return;
    }
    dropCaches();
    Process p = new ProcessBuilder("casync", "mount", "--store=" + store, index.toString(), mnt.toString())
        .redirectErrorStream(true).redirectOutput(work.resolve("casync.log").toFile()).start();
    try {
      for (int i = 0; i < 600 && !Stack.isFuseMounted(mnt); i++) {
        Thread.sleep(50);
      }
      if (!Stack.isFuseMounted(mnt)) {
        throw new IOException("casync mount did not mount within 30 s: " + Files.readString(work.resolve("casync.log")));
      }
      record(w, "casync mount (FUSE, lazy, local store)", workload(w, mnt, "casync mount (FUSE, lazy, local store)"));
    } finally {
      Mounts.unmountOrDetach(mnt);
      p.destroy();
      p.waitFor(10, TimeUnit.SECONDS);
    }
  }

  private void peak(String process, long pid) throws IOException {
    rss.merge(process, vmHwmKib(pid), Math::max);
  }

  private void print(PrintStream out) {
    int width = seconds.values().stream().flatMap(rows -> rows.keySet().stream()).mapToInt(String::length)
        .max().orElse(0);
    String how = "| %-" + Math.max(48, width) + "s";
    for (Map.Entry<String, Map<String, List<Double>>> w : seconds.entrySet()) {
      String title = switch (w.getKey()) {
        case "all" -> String.format("read every file (tar | cat), %.0f MB", treeBytes / 1e6);
        case "start" -> "start-up: bin/java -version from the image";
        default -> randomReads + " random 4 KiB preads (" + randomReads * 4096L / 1048576 + " MiB asked)";
      };
      out.printf("%n%s, %d runs%n", title, runs);
      out.printf(how + " | %9s | %9s | %9s | %7s | %s |%n", "how", "median s", "min s", "max s", "native", "fetched");
      out.printf("| --- | --- | --- | --- | --- | --- |%n");
      double nativeMedian = Stats.median(w.getValue().values().iterator().next());
      for (Map.Entry<String, List<Double>> e : w.getValue().entrySet()) {
        double m = Stats.median(e.getValue());
        List<Long> f = fetched.getOrDefault(w.getKey(), Map.of()).get(e.getKey());
        String fetch = "";
        if (f != null && !f.isEmpty()) {
          List<Double> mib = f.stream().map(b -> b / 1048576.0).toList();
          fetch = String.format("%.1f MiB", Stats.median(mib));
          if (w.getKey().equals("random")) {
            fetch += String.format(" (%.1fx asked)", Stats.median(mib) * 1048576.0 / (randomReads * 4096.0));
          }
        }
        List<Double> lat = latencies.get(e.getKey());
        if (w.getKey().equals("random") && lat != null && !lat.isEmpty()) {
          fetch += String.format("%sread p50 %.2f / p99 %.1f ms", fetch.isEmpty() ? "" : "; ", Stats.percentile(lat, 50),
              Stats.percentile(lat, 99));
        }
        out.printf(how + " | %9.3f | %9.3f | %9.3f | %7.2f | %s |%n", e.getKey(), m, Stats.min(e.getValue()),
            Stats.max(e.getValue()), m / nativeMedian, fetch);
      }
    }
    printUnderStream(out, how);
    for (Map.Entry<String, Map<String, Map<String, List<Double>>>> w : cpu.entrySet()) {
      out.printf("%nCPU seconds over the workload '%s' (user + system, medians): daemon, front end, and this"
          + " JVM (S3Proxy, and the random reads themselves)%n", w.getKey());
      out.printf(how + " | %9s | %9s | %9s |%n", "how", "daemon", "front end", "bench JVM");
      out.printf("| --- | --- | --- | --- |%n");
      for (Map.Entry<String, Map<String, List<Double>>> e : w.getValue().entrySet()) {
        Map<String, List<Double>> m = e.getValue();
        out.printf(how + " | %9.2f | %9.2f | %9.2f |%n", e.getKey(), Stats.median(m.get("daemon")),
            Stats.median(m.get("front end")), Stats.median(m.get("bench JVM")));
      }
    }
    out.printf("%npeak RSS (VmHWM) over the cold runs:");
    rss.forEach((k, v) -> out.printf(" %s %.0f MiB;", k, v / 1024.0));
    out.println();
    notes.forEach(n -> out.println("(" + n + ")"));
  }

  /**
   * The random reads that began while a whole-blob stream ran, and the same reads (same files,
   * offsets and order) in the cold run without prefetch of the same round and front end.
   */
  private void printUnderStream(PrintStream out, String how) {
    if (underStream.isEmpty()) {
      return;
    }
    out.printf("%nrandom reads begun while the whole-blob stream ran, and the same reads in the same round's cold"
        + " run without prefetch (ms, all runs)%n");
    out.printf(how + " | %7s | %9s | %-24s | %-24s | %9s |%n", "how", "reads", "stream s",
        "with the stream p50/p99/max", "without prefetch p50/p99/max", "p99 ratio");
    out.printf("| --- | --- | --- | --- | --- | --- |%n");
    for (Map.Entry<String, Map<Integer, boolean[]>> e : underStream.entrySet()) {
      String row = e.getKey();
      Map<Integer, double[]> with = readsByRound.getOrDefault(row, Map.of());
      Map<Integer, double[]> without = readsByRound.getOrDefault(row.substring(0, row.indexOf(", --prefetch")), Map.of());
      List<Double> a = new ArrayList<>();
      List<Double> b = new ArrayList<>();
      for (Map.Entry<Integer, boolean[]> run : e.getValue().entrySet()) {
        double[] wr = with.get(run.getKey());
        double[] wo = without.get(run.getKey());
        boolean[] under = run.getValue();
        for (int i = 0; wr != null && wo != null && i < under.length; i++) {
          if (under[i]) {
            a.add(wr[i]);
            b.add(wo[i]);
          }
        }
      }
      if (a.isEmpty()) {
        out.printf(how + " | %7d | %9.2f | %-24s | %-24s | %9s |%n", row, 0, Stats.median(streamSeconds.get(row)),
            "", "", "");
        continue;
      }
      out.printf(how + " | %7d | %9.2f | %-24s | %-24s | %9.2f |%n", row, a.size(), Stats.median(streamSeconds.get(row)),
          String.format("%.2f / %.1f / %.1f", Stats.percentile(a, 50), Stats.percentile(a, 99), Stats.max(a)),
          String.format("%.2f / %.1f / %.1f", Stats.percentile(b, 50), Stats.percentile(b, 99), Stats.max(b)),
          Stats.percentile(a, 99) / Stats.percentile(b, 99));
    }
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
      return s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)).mapToLong(p -> p.toFile().length()).sum();
    }
  }

  /** Regular files of at least 4 KiB, relative to {@code dir}, in a fixed order. */
  private static List<Path> filesOf(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) && p.toFile().length() >= 4096)
          .map(dir::relativize).sorted().toList();
    }
  }

  private static boolean installed(String command) {
    for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      if (Files.isExecutable(Path.of(d, command))) {
        return true;
      }
    }
    return false;
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
