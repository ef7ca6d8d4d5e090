package io.lazypull.daemon.kernel;

import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

/**
 * The kernel-VM lane's test (ci/kernel-vm), in two modes:
 *
 * <ul>
 *   <li>{@code prepare} (host): builds the test images from source trees with deterministic
 *       random content. Image 0 with {@code mkfs.erofs --chunksize=4096 --blobdev} (erofs-utils
 *       1.5 leaves the device tag empty: it is mounted with {@code device=<blob sha256>}); the
 *       others with {@code lazypull mkfs --layout chunked} (tag = blob sha256, blob index with
 *       piece digests). Meta and data blobs are stored under their sha256 (the fsid and the
 *       cookie the daemon resolves), with a manifest of each tree (type, path, size, sha256).
 *   <li>{@code run} (guest, on the cachefiles kernel): {@code lazypull holder} keeps {@code
 *       /dev/cachefiles}; {@code lazypull daemon --device kernel} binds it and hands it over;
 *       image 0 is mounted ({@code mount -t erofs none -o fsid=...}) and every file's sha256
 *       compared with the manifest; every further image is read while the daemon is killed
 *       with SIGKILL again and again, each time while a reader is blocked in the kernel on an
 *       on-demand read, each successor taking the device from the holder and writing {@code
 *       restore} once. Prints, and writes to {@code WORK/result}, one line: {@code PASS ...}
 *       or {@code FAIL <why>}.
 * </ul>
 */
public final class KernelVmCheck {
  private static final String RUN_DIR = "/run/lazypull";
  private static final int PROGRESS_TIMEOUT_SECONDS = 180;

  private KernelVmCheck() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0) {
      throw new IllegalArgumentException("usage: KernelVmCheck prepare|run --name value ...");
    }
    Map<String, String> o = options(Arrays.copyOfRange(args, 1, args.length));
    switch (args[0]) {
      case "prepare" -> prepare(o);
      case "run" -> System.exit(new Run(o).call());
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  static Map<String, String> options(String[] args) {
    Map<String, String> o = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value pairs, got " + String.join(" ", args));
      }
      o.put(args[i], args[++i]);
    }
    return o;
  }

  static String require(Map<String, String> o, String name) {
    String v = o.get(name);
    if (v == null) {
      throw new IllegalArgumentException("missing " + name);
    }
    return v;
  }

  // ---------------------------------------------------------------- prepare (host)

  private static void prepare(Map<String, String> o) throws Exception {
    Path work = Path.of(require(o, "--work"));
    int images = Integer.parseInt(o.getOrDefault("--images", "3"));
    int bigMiB = Integer.parseInt(o.getOrDefault("--kill-image-mib", "24"));
    String mkfsErofs = o.getOrDefault("--mkfs-erofs", "mkfs.erofs");
    Path jar = Path.of(require(o, "--jar"));
    String java = ProcessHandle.current().info().command().orElse("java");
    Path blobs = Files.createDirectories(work.resolve("blobs"));
    Path imagesDir = Files.createDirectories(work.resolve("images"));
    for (int i = 0; i < images; i++) {
      Path src = work.resolve("src").resolve(Integer.toString(i));
      generateTree(src, i, i == 0 ? 6 : bigMiB);
      Path meta = work.resolve("meta.tmp");
      Files.deleteIfExists(meta);
      String blobId;
      String maker;
      if (i == 0) {
        Path blob = work.resolve("blob.tmp");
        Files.deleteIfExists(blob);
        run(List.of(mkfsErofs, "--quiet", "-T0", "--chunksize=4096", "--blobdev=" + blob, meta.toString(),
            src.toString()));
        blobId = sha256(blob);
        Files.move(blob, blobs.resolve(blobId), StandardCopyOption.REPLACE_EXISTING);
        maker = "mkfs.erofs 1.5 --chunksize=4096 --blobdev";
      } else {
        Path blobTmp = Files.createDirectories(work.resolve("blob.tmp.d"));
        run(List.of(java, "-jar", jar.toString(), "mkfs", "--layout", "chunked", "--blob-dir", blobTmp.toString(),
            src.toString(), meta.toString()));
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(blobTmp)) {
          Path blob = ds.iterator().next();
          blobId = blob.getFileName().toString();
          Files.move(blob, blobs.resolve(blobId), StandardCopyOption.REPLACE_EXISTING);
        }
        Files.delete(blobTmp);
        maker = "lazypull mkfs --layout chunked";
      }
      String fsid = sha256(meta);
      Files.move(meta, blobs.resolve(fsid), StandardCopyOption.REPLACE_EXISTING);
      List<String> manifest = manifest(src);
      Files.write(imagesDir.resolve(i + ".manifest"), manifest);
      Properties props = new Properties();
      props.setProperty("fsid", fsid);
      props.setProperty("blob", blobId);
      props.setProperty("maker", maker);
      // mkfs.erofs 1.5 leaves the device tag empty: name the cookie with device=.
      props.setProperty("mount", "fsid=" + fsid + (i == 0 ? ",device=" + blobId : ""));
      props.setProperty("device-tagged", Boolean.toString(i != 0));
      try (var w = Files.newBufferedWriter(imagesDir.resolve(i + ".properties"))) {
        props.store(w, "image " + i);
      }
      System.out.printf("image %d (%s): fsid %s (%d bytes), blob %s (%d bytes), %d files%n", i, maker, fsid,
          Files.size(blobs.resolve(fsid)), blobId, Files.size(blobs.resolve(blobId)),
          manifest.stream().filter(l -> l.startsWith("f ")).count());
    }
  }

  private static void run(List<String> cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .start();
    if (p.waitFor() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed with exit code " + p.exitValue());
    }
  }

  /**
   * A tree of every shape EROFS maps differently: a big file (many READs: the kill window),
   * middle-sized and tiny files (inline tails), sizes off page boundaries, an empty file, a
   * sparse file (zero chunks), nested directories and symlinks. Content is random per image.
   */
  static void generateTree(Path root, int seed, int bigMiB) throws IOException {
    if (Files.exists(root)) {
      try (Stream<Path> walk = Files.walk(root)) {
        walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
    Random rnd = new Random(0x1a2b3c4dL + seed);
    Files.createDirectories(root.resolve("usr/lib/deep/er/still"));
    Files.createDirectories(root.resolve("etc"));
    Files.createDirectories(root.resolve("empty-dir"));
    writeRandom(root.resolve("usr/lib/big.bin"), (long) bigMiB << 20, rnd);
    for (int i = 0; i < 4; i++) {
      writeRandom(root.resolve("usr/lib/mid-" + i + ".so"), (1L << 20) + rnd.nextInt(1 << 20), rnd);
    }
    for (int i = 0; i < 48; i++) {
      Path dir = root.resolve(i % 3 == 0 ? "etc" : i % 3 == 1 ? "usr/lib/deep" : "usr/lib/deep/er/still");
      writeRandom(dir.resolve("small-" + i), rnd.nextInt(70_000), rnd);
    }
    writeRandom(root.resolve("etc/page-plus-one"), 4097, rnd);
    writeRandom(root.resolve("etc/page-minus-one"), 4095, rnd);
    Files.createFile(root.resolve("etc/empty"));
    try (FileChannel ch = FileChannel.open(root.resolve("usr/lib/sparse.img"), StandardOpenOption.CREATE_NEW,
        StandardOpenOption.WRITE)) {
      byte[] b = new byte[4096];
      rnd.nextBytes(b);
      ch.write(ByteBuffer.wrap(b), 3L << 20);
      ch.write(ByteBuffer.wrap(b), 1L << 20);
    }
    Files.createSymbolicLink(root.resolve("etc/link-to-big"), Path.of("../usr/lib/big.bin"));
    Files.createSymbolicLink(root.resolve("dangling"), Path.of("/nowhere/at/all"));
  }

  private static void writeRandom(Path file, long size, Random rnd) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      byte[] b = new byte[1 << 20];
      for (long left = size; left > 0; ) {
        int n = (int) Math.min(b.length, left);
        rnd.nextBytes(b);
        ch.write(ByteBuffer.wrap(b, 0, n));
        left -= n;
      }
    }
  }

  // ---------------------------------------------------------------- manifests

  /** One line per entry, sorted by path: {@code d PATH}, {@code f PATH SIZE SHA256}, {@code l PATH -> TARGET}. */
  static List<String> manifest(Path root) throws IOException {
    try {
      return manifestParallel(root, 1);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }

  /** {@link #manifest}, hashing files on {@code threads} threads (so several reads are in flight). */
  static List<String> manifestParallel(Path root, int threads) throws IOException, InterruptedException {
    TreeMap<String, String> lines = new TreeMap<>();
    ConcurrentLinkedQueue<Path> files = new ConcurrentLinkedQueue<>();
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : (Iterable<Path>) walk::iterator) {
        String rel = rel(root, p);
        BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        if (a.isSymbolicLink()) {
          lines.put(rel, "l " + rel + " -> " + Files.readSymbolicLink(p));
        } else if (a.isDirectory()) {
          lines.put(rel, "d " + rel);
        } else if (a.isRegularFile()) {
          files.add(p);
        } else {
          lines.put(rel, "? " + rel);
        }
      }
    }
    Map<String, String> hashed = new ConcurrentHashMap<>();
    AtomicReference<IOException> error = new AtomicReference<>();
    List<Thread> workers = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      Thread w = new Thread(() -> {
        Path p;
        while (error.get() == null && (p = files.poll()) != null) {
          try {
            String rel = rel(root, p);
            hashed.put(rel, "f " + rel + " " + Files.size(p) + " " + sha256(p));
          } catch (IOException e) {
            error.compareAndSet(null, new IOException("reading " + p + ": " + e, e));
          }
        }
      }, "hash-" + t);
      w.start();
      workers.add(w);
    }
    for (Thread w : workers) {
      w.join();
    }
    if (error.get() != null) {
      throw error.get();
    }
    lines.putAll(hashed);
    return new ArrayList<>(lines.values());
  }

  private static String rel(Path root, Path p) {
    String rel = root.relativize(p).toString();
    return rel.isEmpty() ? "." : rel;
  }

  static String sha256(Path file) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
    ByteBuffer buf = ByteBuffer.allocate(1 << 20);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (ch.read(buf.clear()) >= 0) {
        md.update(buf.flip());
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }

  // ---------------------------------------------------------------- run (guest)

  /** The guest side: holder, daemon generations, mounts, readers, kills, verdict. */
  static final class Run {
    private static final long T0 = System.nanoTime();

    private final Path work;
    private final Path logs;
    private final List<String> lazypull;
    private final Path cacheDir;
    private final int minKills;
    private final long readTimeoutMillis;
    private final Path runDir = Path.of(RUN_DIR);
    private final Path holderSocket = runDir.resolve("holder.sock");
    private Process holder;
    private Process daemon;
    private int generation = -1;
    private int kills;
    private int digests;
    private final List<String> makers = new ArrayList<>();

    Run(Map<String, String> o) {
      this.work = Path.of(require(o, "--work"));
      this.logs = work.resolve("logs");
      this.cacheDir = Path.of(require(o, "--cache-dir"));
      this.minKills = Integer.parseInt(o.getOrDefault("--min-kills", "6"));
      this.readTimeoutMillis = TimeUnit.SECONDS.toMillis(Long.parseLong(o.getOrDefault("--read-timeout", "600")));
      List<String> cmd = new ArrayList<>();
      cmd.add(require(o, "--java"));
      cmd.addAll(List.of(require(o, "--jvm-opts").trim().split("\\s+")));
      cmd.add("-jar");
      cmd.add(require(o, "--jar"));
      this.lazypull = List.copyOf(cmd);
    }

    int call() {
      String verdict;
      try {
        verdict = runAll();
      } catch (Throwable e) {
        e.printStackTrace(System.out);
        verdict = "FAIL " + e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).replace('\n', ' ');
      } finally {
        stopAll();
        saveDmesg();
      }
      verdict += String.format(" (guest %.1f s)", (System.nanoTime() - T0) / 1e9);
      System.out.println(verdict);
      System.out.flush();
      try {
        Files.writeString(work.resolve("result"), verdict + "\n");
      } catch (IOException e) {
        System.out.println("FAIL cannot write the result: " + e);
        return 1;
      }
      return verdict.startsWith("PASS") ? 0 : 1;
    }

    private String runAll() throws Exception {
      String kernel = Files.readString(Path.of("/proc/sys/kernel/osrelease")).trim();
      log("kernel " + kernel + ": " + Files.readString(Path.of("/proc/version")).trim());
      if (!Files.exists(Path.of("/dev/cachefiles"))) {
        return "FAIL kernel " + kernel + " has no /dev/cachefiles";
      }
      Files.createDirectories(runDir);
      Files.createDirectories(logs);
      startHolder();
      startDaemon();
      int images = 0;
      while (Files.exists(work.resolve("images/" + images + ".properties"))) {
        images++;
      }
      if (images < 2) {
        return "FAIL need at least 2 prepared images in " + work.resolve("images");
      }
      for (int i = 0; i < images; i++) {
        String failure = checkImage(i, /* kill= */ i > 0);
        if (failure != null) {
          return "FAIL image " + i + ": " + failure;
        }
      }
      stopDaemon();
      Totals t = totals();
      if (kills < minKills) {
        return "FAIL only " + kills + " daemon kills happened during reads (wanted >= " + minKills + ")";
      }
      if (!t.problems.isEmpty()) {
        return "FAIL " + String.join("; ", t.problems);
      }
      return String.format("PASS kernel %s: %d images (%s), %d file digests compared, all match; %d SIGKILLs of"
          + " 'lazypull daemon --device kernel' while readers were blocked on on-demand reads (%d daemon"
          + " generations, each successor took /dev/cachefiles from 'lazypull holder' and wrote restore once);"
          + " served at least OPEN=%d READ=%d CLOSE=%d (OPENs answered by successors: %d), %d MiB fetched,"
          + " 0 failed READs", kernel, images, String.join(", ", makers), digests, kills, generation + 1, t.opens,
          t.reads, t.closes, t.successorOpens, t.bytesFetched >> 20);
    }

    /** Mounts image {@code i}, reads and compares every file (killing daemons if asked), unmounts. */
    private String checkImage(int i, boolean kill) throws Exception {
      Properties props = new Properties();
      try (var r = Files.newBufferedReader(work.resolve("images/" + i + ".properties"))) {
        props.load(r);
      }
      makers.add(props.getProperty("maker"));
      String data = props.getProperty("mount");
      List<String> expected = Files.readAllLines(work.resolve("images/" + i + ".manifest"));
      Path mnt = Files.createDirectories(runDir.resolve("mnt/" + i));
      long t0 = System.nanoTime();
      // Images made by lazypull are mounted the way users do, with 'lazypull mount' (fscache
      // mode); mkfs.erofs 1.5's untagged image needs device=, which only mount(2) can say.
      boolean viaCli = props.getProperty("device-tagged", "false").equals("true");
      if (viaCli) {
        cli(List.of("mount", "--frontend", "kernel", "--fsid", props.getProperty("fsid"), mnt.toString()), "mount-" + i);
      } else {
        Mounts.mount("none", mnt.toString(), "erofs", Mounts.MS_RDONLY, data);
      }
      log("image " + i + " (" + props.getProperty("maker") + "): "
          + (viaCli ? "lazypull mount --frontend kernel --fsid " + props.getProperty("fsid") : "mount -t erofs none -o " + data)
          + " " + mnt + (kill ? "; reading with kills" : "; reading"));
      int killsBefore = kills;
      AtomicReference<List<String>> actual = new AtomicReference<>();
      AtomicReference<Throwable> readError = new AtomicReference<>();
      Thread reader = new Thread(() -> {
        try {
          actual.set(manifestParallel(mnt, 3));
        } catch (Throwable e) {
          readError.set(e);
        }
      }, "reader-" + i);
      reader.start();
      if (kill) {
        killWhile(reader);
      }
      reader.join(readTimeoutMillis);
      if (reader.isAlive()) {
        sysrq('w');
        return "reads did not finish within " + readTimeoutMillis / 1000 + " s (blocked tasks dumped to dmesg)";
      }
      if (readError.get() != null) {
        return "reading failed: " + readError.get();
      }
      String diff = compare(expected, actual.get());
      if (diff != null) {
        return diff;
      }
      int files = (int) expected.stream().filter(l -> l.startsWith("f ")).count();
      digests += files;
      log(String.format("image %d: %d entries, %d file digests match the source (%d kills, %.1f s)", i,
          expected.size(), files, kills - killsBefore, (System.nanoTime() - t0) / 1e9));
      if (viaCli) {
        cli(List.of("umount", mnt.toString()), "umount-" + i);
      } else {
        Mounts.umount(mnt, 0);
      }
      return null;
    }

    /** Runs 'lazypull ARGS' to completion, its output in logs/NAME.log; fails on a non-zero exit. */
    private void cli(List<String> args, String name) throws IOException, InterruptedException {
      List<String> cmd = new ArrayList<>(lazypull);
      cmd.addAll(args);
      Path out = logs.resolve(name + ".log");
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile()).start();
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("lazypull " + String.join(" ", args) + " did not finish within 120 s");
      }
      if (p.exitValue() != 0) {
        throw new IOException("lazypull " + String.join(" ", args) + " failed (" + p.exitValue() + "): "
            + Files.readString(out).strip());
      }
    }

    private static String compare(List<String> expected, List<String> actual) {
      if (expected.equals(actual)) {
        return null;
      }
      List<String> missing = new ArrayList<>(expected);
      missing.removeAll(actual);
      List<String> extra = new ArrayList<>(actual);
      extra.removeAll(expected);
      return "tree differs from the source: expected but not found " + head(missing) + "; found but not expected "
          + head(extra);
    }

    private static List<String> head(List<String> l) {
      return l.size() <= 3 ? l : l.subList(0, 3);
    }

    /**
     * While {@code reader} runs: waits until the current daemon generation has written some
     * more data (after a kill, that proves the successor resumed the pending reads) and a reader
     * thread is blocked in the kernel on an on-demand read, then kills the daemon with SIGKILL
     * and starts the next one.
     */
    private void killWhile(Thread reader) throws Exception {
      while (reader.isAlive()) {
        long goal = counter(generation, "bytesWritten") + ThreadLocalRandom.current().nextLong(1, 5) * (1 << 20);
        List<String> blocked = awaitProgress(reader, goal);
        if (blocked == null) {
          return;
        }
        long pid = daemon.pid();
        daemon.destroyForcibly(); // SIGKILL
        daemon.waitFor();
        kills++;
        log("kill " + kills + ": SIGKILL daemon generation " + generation + " (pid " + pid + ", "
            + (counter(generation, "bytesWritten") >> 20) + " MiB written) while blocked in the kernel: " + blocked);
        startDaemon();
      }
    }

    /**
     * Waits until the current generation has written {@code goal} bytes and a reader is blocked
     * in the kernel; returns the blocked readers, or null if the reader finished first. A
     * generation that makes no progress while reads are pending is a failure.
     */
    private List<String> awaitProgress(Thread reader, long goal) throws Exception {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(PROGRESS_TIMEOUT_SECONDS);
      long nextNote = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
      while (true) {
        long written = counter(generation, "bytesWritten");
        if (written >= goal) {
          List<String> blocked = blockedReaders();
          if (!blocked.isEmpty()) {
            return blocked;
          }
        }
        reader.join(10);
        if (!reader.isAlive()) {
          return null;
        }
        if (System.nanoTime() > nextNote) {
          nextNote = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
          log("  generation " + generation + ": " + (written >> 20) + " MiB written, waiting for " + (goal >> 20)
              + " MiB and a blocked reader");
        }
        if (System.nanoTime() > deadline) {
          sysrq('w');
          throw new IOException("daemon generation " + generation + " wrote " + written + " bytes, no progress to "
              + goal + " within " + PROGRESS_TIMEOUT_SECONDS + " s although reads are pending (blocked tasks dumped"
              + " to dmesg)");
        }
      }
    }

    /**
     * Our reader threads in uninterruptible/killable sleep (state D), with their kernel wait
     * channel: a read waiting for the daemon (cachefiles on-demand) or for a folio another such
     * read is filling.
     */
    private static List<String> blockedReaders() {
      List<String> blocked = new ArrayList<>();
      try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
        for (Path task : tasks) {
          try {
            String comm = Files.readString(task.resolve("comm")).trim();
            if (!comm.startsWith("hash-") && !comm.startsWith("reader-")) {
              continue;
            }
            String stat = Files.readString(task.resolve("stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            if (state == 'D') {
              blocked.add(comm + "@" + Files.readString(task.resolve("wchan")).trim());
            }
          } catch (IOException e) {
            // the thread ended meanwhile
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return blocked;
    }

    private void startHolder() throws Exception {
      Files.deleteIfExists(holderSocket);
      Path log = logs.resolve("holder.log");
      holder = new ProcessBuilder(command("holder", "--socket", holderSocket.toString()))
          .redirectErrorStream(true).redirectOutput(log.toFile()).start();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (!Files.exists(holderSocket)) {
        if (!holder.isAlive() || System.nanoTime() > deadline) {
          throw new IOException("'lazypull holder' did not come up; see " + log + ":\n" + tail(log));
        }
        Thread.sleep(50);
      }
      log("'lazypull holder' pid " + holder.pid() + " on " + holderSocket);
    }

    private void startDaemon() throws Exception {
      generation++;
      Path log = logs.resolve("daemon-" + generation + ".log");
      Path ready = runDir.resolve("ready-" + generation);
      long t0 = System.nanoTime();
      daemon = new ProcessBuilder(command("daemon", "--device", "kernel", "--cache-dir", cacheDir.toString(),
          "--backend", "file://" + work.resolve("blobs"), "--holder", holderSocket.toString(), "--state-dir",
          runDir.resolve("state").toString(), "--threads", "4", "--stats-interval", "1", "--ready-file",
          ready.toString()))
          .redirectErrorStream(true).redirectOutput(log.toFile()).start();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
      while (!Files.exists(ready)) {
        if (!daemon.isAlive()) {
          throw new IOException("daemon generation " + generation + " exited with " + daemon.exitValue()
              + " before serving; see " + log + ":\n" + tail(log));
        }
        if (System.nanoTime() > deadline) {
          throw new IOException("daemon generation " + generation + " not ready within 180 s; see " + log);
        }
        Thread.sleep(20);
      }
      log(String.format("daemon generation %d pid %d serving after %.1f s: %s", generation, daemon.pid(),
          (System.nanoTime() - t0) / 1e9, grep(log, "took over the device") != null
              ? "took the held device, wrote restore" : "bound a new device, handed it to the holder"));
    }

    private List<String> command(String... args) {
      List<String> cmd = new ArrayList<>(lazypull);
      cmd.addAll(List.of(args));
      return cmd;
    }

    private void stopDaemon() throws InterruptedException {
      if (daemon != null && daemon.isAlive()) {
        daemon.destroy(); // SIGTERM: answers what it read, closes its objects, lets go of the lease
        if (!daemon.waitFor(60, TimeUnit.SECONDS)) {
          daemon.destroyForcibly();
        }
      }
    }

    private void stopAll() {
      for (int i = 0; i < 16; i++) {
        Path mnt = runDir.resolve("mnt/" + i);
        try {
          if (Files.isDirectory(mnt) && Mounts.isMountPoint(mnt)) {
            Mounts.umount(mnt, Mounts.MNT_DETACH);
          }
        } catch (IOException e) {
          log("cleanup " + mnt + ": " + e);
        }
      }
      try {
        stopDaemon();
        if (holder != null && holder.isAlive()) {
          holder.destroy();
          if (!holder.waitFor(30, TimeUnit.SECONDS)) {
            holder.destroyForcibly();
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    /** The last counters (a "stats:" or "stopped:" line) generation {@code g} logged. */
    private Map<String, String> counters(int g) {
      Map<String, String> kv = new TreeMap<>();
      Path log = logs.resolve("daemon-" + g + ".log");
      try {
        if (!Files.exists(log)) {
          return kv;
        }
        String last = null;
        for (String line : Files.readAllLines(log, StandardCharsets.ISO_8859_1)) {
          if (line.contains(" stats: opens=") || line.contains(" stopped: opens=")) {
            last = line;
          }
        }
        if (last != null) {
          for (String tok : last.substring(last.indexOf("opens=")).trim().split("\\s+")) {
            int eq = tok.indexOf('=');
            if (eq > 0) {
              kv.put(tok.substring(0, eq), tok.substring(eq + 1));
            }
          }
        }
      } catch (IOException e) {
        // being written; the next look sees it
      }
      return kv;
    }

    private long counter(int g, String name) {
      try {
        return Long.parseLong(counters(g).getOrDefault(name, "0"));
      } catch (NumberFormatException e) {
        return 0;
      }
    }

    /** Sums what every daemon generation logged, and checks how each got its device. */
    private Totals totals() throws IOException {
      Totals t = new Totals();
      for (int g = 0; g <= generation; g++) {
        Map<String, String> c = counters(g);
        long opens = Long.parseLong(c.getOrDefault("opens", "0"));
        t.opens += opens;
        t.reads += Long.parseLong(c.getOrDefault("reads", "0"));
        t.closes += Long.parseLong(c.getOrDefault("closes", "0"));
        t.bytesFetched += Long.parseLong(c.getOrDefault("bytesFetched", "0"));
        if (g > 0) {
          t.successorOpens += opens;
        }
        long readFailures = Long.parseLong(c.getOrDefault("readFailures", "0"));
        long integrity = Long.parseLong(c.getOrDefault("integrityFailures", "0"));
        if (readFailures + integrity > 0) {
          t.problems.add("generation " + g + " failed " + readFailures + " READs (" + integrity + " integrity failures)");
        }
        Path log = logs.resolve("daemon-" + g + ".log");
        int restores = count(log, "restore written");
        boolean bound = grep(log, "bound in on-demand mode") != null;
        if (g == 0 ? (!bound || restores != 0) : (bound || restores != 1)) {
          t.problems.add("generation " + g + " " + (bound ? "bound a new device" : "did not bind") + " and wrote restore "
              + restores + " times (the first must bind, every successor take the held device and restore once)");
        }
        log("generation " + g + ": " + (bound ? "bound" : "restore x" + restores) + ", " + c);
      }
      return t;
    }

    private static final class Totals {
      long opens;
      long reads;
      long closes;
      long successorOpens;
      long bytesFetched;
      final List<String> problems = new ArrayList<>();
    }

    private static String grep(Path log, String needle) throws IOException {
      for (String line : Files.readAllLines(log, StandardCharsets.ISO_8859_1)) {
        if (line.contains(needle)) {
          return line;
        }
      }
      return null;
    }

    private static int count(Path log, String needle) throws IOException {
      return (int) Files.readAllLines(log, StandardCharsets.ISO_8859_1).stream().filter(l -> l.contains(needle)).count();
    }

    private static String tail(Path log) throws IOException {
      if (!Files.exists(log)) {
        return "(no log)";
      }
      List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
    }

    private static void sysrq(char c) {
      try {
        Files.writeString(Path.of("/proc/sysrq-trigger"), Character.toString(c));
      } catch (IOException e) {
        log("sysrq: " + e);
      }
    }

    private void saveDmesg() {
      try {
        Process p = new ProcessBuilder("dmesg").redirectErrorStream(true)
            .redirectOutput(logs.resolve("dmesg.txt").toFile()).start();
        p.waitFor(20, TimeUnit.SECONDS);
        for (String line : Files.readAllLines(logs.resolve("dmesg.txt"), StandardCharsets.ISO_8859_1)) {
          String l = line.toLowerCase(java.util.Locale.ROOT);
          if (l.contains("erofs") || l.contains("cachefiles") || l.contains("fscache") || l.contains("bug:")
              || l.contains("warning:") || l.contains("blocked for more") || l.contains("call trace")) {
            System.out.println("dmesg: " + line);
          }
        }
      } catch (IOException | InterruptedException e) {
        log("dmesg: " + e);
      }
    }

    private static void log(String s) {
      System.out.printf("kernel-vm: [%6.1f s] %s%n", (System.nanoTime() - T0) / 1e9, s);
      System.out.flush();
    }
  }
}
