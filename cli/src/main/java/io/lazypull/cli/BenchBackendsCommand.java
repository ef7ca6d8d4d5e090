package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Credentials;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Deque;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/*
 * For each backend: push one pseudo-random blob, then with the same BlobBackend (the same
 * client, connection pool and retry layer the daemon uses)
 *   - ranged reads of 4 KiB, 128 KiB and 1 MiB at random aligned offsets, one at a time:
 *     latency p50/p99 and the throughput that gives;
 *   - 1 MiB ranged reads from --threads threads at once: aggregate throughput;
 *   - one whole-blob transfer (streamed and verified against the digest), beside them.
 *
 * Loopback servers: a file:// directory always; S3Proxy in this JVM when its classes are on
 * the classpath (they are not in the shipped jar: ci/bench-backends adds them); Debian's
 * docker-registry as a child process when it is installed. --backend adds any other URI.
 */

/** Ranged-read latency and throughput per backend, beside a whole-blob download. */
@Command(name = "backends", mixinStandardHelpOptions = true,
    description = {"Ranged-read latency (p50/p99 of 4 KiB, 128 KiB, 1 MiB reads) and",
        "throughput per backend on loopback, beside a whole-blob download with",
        "the same client. Measures a file:// directory, S3Proxy (when on the",
        "classpath: ci/bench-backends puts it there) and docker-registry (when",
        "installed); --backend adds others. Prints a table on stdout."})
final class BenchBackendsCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(BenchBackendsCommand.class);
  private static final int[] RANGES = {4 << 10, 128 << 10, 1 << 20};
  private static final int WARMUP = 10;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Option(names = "--size-mib", paramLabel = "N", defaultValue = "256",
      description = "Size of the blob (default: ${DEFAULT-VALUE}).")
  int sizeMib;

  @Option(names = "--runs", paramLabel = "N", defaultValue = "200",
      description = "Ranged reads per range size (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--threads", paramLabel = "N", defaultValue = "8",
      description = "Concurrent readers for the parallel 1 MiB row (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--backend", paramLabel = "URI",
      description = "Also measure this backend (the blob is pushed there). Repeatable.")
  List<String> extra = new ArrayList<>();

  @Option(names = "--no-loopback", description = "Only measure the --backend URIs.")
  boolean noLoopback;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = "Where the blob and the local servers' data go (default: a new temporary directory).")
  Path workDir;

  record Target(String name, String uri, BackendOptions options) {}

  record Row(String backend, String what, int n, double p50Ms, double p99Ms, double mibPerSec,
      double opsPerSec) {}

  /**
   * True if S3Proxy and jclouds can be loaded. Checked by name, without loading {@code
   * io.lazypull.backend.loopback.S3ProxyServer}, whose verification would need them.
   */
  static boolean s3ProxyPresent() {
    ClassLoader cl = BenchBackendsCommand.class.getClassLoader();
    try {
      Class.forName("org.gaul.s3proxy.S3Proxy", false, cl);
      Class.forName("org.jclouds.ContextBuilder", false, cl);
      return true;
    } catch (ClassNotFoundException | LinkageError e) {
      return false;
    }
  }

  @Override
  public Integer call() throws Exception {
    if (sizeMib < 2 || runs < 1 || threads < 1) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--size-mib must be >= 2, --runs and --threads >= 1");
    }
    ServerLogs.quiet();
    boolean ownDir = workDir == null;
    Path work = ownDir ? Files.createTempDirectory("lazypull-bench-backends-")
        : Files.createDirectories(workDir);
    Deque<AutoCloseable> cleanup = new ArrayDeque<>();
    List<String> notes = new ArrayList<>();
    try {
      long size = (long) sizeMib << 20;
      Path blob = work.resolve("blob.bin");
      generate(blob, size);
      String hex = Digests.sha256Hex(blob);
      log.info("blob: {} MiB, sha256:{}", sizeMib, hex);

      List<Target> targets = new ArrayList<>();
      if (!noLoopback) {
        Path store = Files.createDirectories(work.resolve("file-store"));
        targets.add(new Target("file", store.toUri().toString(), BackendOptions.defaults()));
        if (s3ProxyPresent()) {
          String secret = UUID.randomUUID().toString();
          io.lazypull.backend.loopback.S3ProxyServer s3 = io.lazypull.backend.loopback.S3ProxyServer.start(
              Files.createDirectories(work.resolve("s3proxy")), "bench", secret);
          cleanup.push(s3);
          s3.createBucket("bench");
          targets.add(new Target("s3 (S3Proxy)", s3.uri("bench/blobs"),
              BackendOptions.builder().credentials(new Credentials("bench", secret)).build()));
        } else {
          notes.add("s3: skipped, S3Proxy is not on the classpath (ci/bench-backends adds it)");
        }
        if (io.lazypull.backend.loopback.RegistryServer.find() != null) {
          io.lazypull.backend.loopback.RegistryServer reg = io.lazypull.backend.loopback.RegistryServer.open(Files.createDirectories(work.resolve("registry")));
          cleanup.push(reg);
          targets.add(new Target("registry", reg.uri("bench/blobs"), BackendOptions.defaults()));
        } else {
          notes.add("registry: skipped, docker-registry is not installed");
        }
      }
      for (String uri : extra) {
        targets.add(new Target(uri, uri, BackendOptions.defaults()));
      }
      if (targets.isEmpty()) {
        throw new CommandLine.ParameterException(spec.commandLine(), "nothing to measure");
      }

      List<Row> rows = new ArrayList<>();
      for (Target t : targets) {
        log.info("measuring {} ({})", t.name(), t.uri());
        rows.addAll(measure(t, blob, hex, size));
      }
      print(rows, notes);
      return 0;
    } finally {
      while (!cleanup.isEmpty()) {
        try {
          cleanup.pop().close();
        } catch (Exception e) {
          log.warn("cleanup: {}", e.toString());
        }
      }
      if (ownDir) {
        deleteTree(work);
      }
    }
  }

  private List<Row> measure(Target t, Path blob, String hex, long size) throws Exception {
    List<Row> rows = new ArrayList<>();
    try (BlobBackend b = Backends.open(t.uri(), t.options())) {
      long t0 = System.nanoTime();
      b.put(blob);
      double putSecs = (System.nanoTime() - t0) / 1e9;
      rows.add(new Row(t.name(), "put (upload)", 1, putSecs * 1000, Double.NaN, mib(size) / putSecs,
          Double.NaN));
      b.size(hex);
      SplittableRandom rnd = new SplittableRandom(42);
      for (int range : RANGES) {
        ByteBuffer buf = ByteBuffer.allocateDirect(range);
        long slots = size / range;
        for (int i = 0; i < WARMUP; i++) {
          buf.clear();
          b.read(hex, rnd.nextLong(slots) * range, buf);
        }
        long[] lat = new long[runs];
        long start = System.nanoTime();
        for (int i = 0; i < runs; i++) {
          buf.clear();
          long s = System.nanoTime();
          int n = b.read(hex, rnd.nextLong(slots) * range, buf);
          lat[i] = System.nanoTime() - s;
          if (n != range) {
            throw new IOException(t.name() + ": short read " + n + " of " + range);
          }
        }
        double secs = (System.nanoTime() - start) / 1e9;
        Arrays.sort(lat);
        rows.add(new Row(t.name(), "read " + human(range), runs, lat[(runs - 1) / 2] / 1e6,
            lat[Math.max(0, (int) Math.ceil(runs * 0.99) - 1)] / 1e6, mib((long) range * runs) / secs,
            runs / secs));
      }
      rows.add(parallel(t, b, hex, size));
      long w0 = System.nanoTime();
      long n = b.transferTo(hex, new NullChannel());
      double wholeSecs = (System.nanoTime() - w0) / 1e9;
      if (n != size) {
        throw new IOException(t.name() + ": whole-blob transfer gave " + n + " of " + size + " bytes");
      }
      rows.add(new Row(t.name(), "whole blob (streamed, verified)", 1, wholeSecs * 1000, Double.NaN,
          mib(size) / wholeSecs, Double.NaN));
      log.info("{}: {}", t.name(), b.stats());
    }
    return rows;
  }

  /** 1 MiB reads from {@code threads} threads at once, {@code runs} in total. */
  private Row parallel(Target t, BlobBackend b, String hex, long size) throws Exception {
    int range = 1 << 20;
    long slots = size / range;
    int per = Math.max(1, runs / threads);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<long[]>> futures = new ArrayList<>();
      long start = System.nanoTime();
      for (int th = 0; th < threads; th++) {
        long seed = 1000 + th;
        futures.add(pool.submit(() -> {
          SplittableRandom rnd = new SplittableRandom(seed);
          ByteBuffer buf = ByteBuffer.allocateDirect(range);
          long[] lat = new long[per];
          for (int i = 0; i < per; i++) {
            buf.clear();
            long s = System.nanoTime();
            b.read(hex, rnd.nextLong(slots) * range, buf);
            lat[i] = System.nanoTime() - s;
          }
          return lat;
        }));
      }
      long[] all = new long[per * threads];
      int k = 0;
      for (Future<long[]> f : futures) {
        for (long l : f.get()) {
          all[k++] = l;
        }
      }
      double secs = (System.nanoTime() - start) / 1e9;
      Arrays.sort(all);
      return new Row(t.name(), "read 1 MiB x" + threads + " threads", all.length,
          all[(all.length - 1) / 2] / 1e6, all[Math.max(0, (int) Math.ceil(all.length * 0.99) - 1)] / 1e6,
          mib((long) range * all.length) / secs, all.length / secs);
    } finally {
      pool.shutdownNow();
    }
  }

  private void print(List<Row> rows, List<String> notes) {
    PrintWriter out = spec.commandLine().getOut();
    int w = rows.stream().mapToInt(r -> r.backend().length()).max().orElse(7);
    w = Math.max(w, 7);
    String fmt = "%-" + w + "s  %-32s %6s %10s %10s %10s %10s%n";
    out.printf(fmt, "backend", "operation", "n", "p50 ms", "p99 ms", "MiB/s", "ops/s");
    for (Row r : rows) {
      out.printf(Locale.ROOT, fmt, r.backend(), r.what(), r.n(), ms(r.p50Ms()), ms(r.p99Ms()),
          rate(r.mibPerSec()), rate(r.opsPerSec()));
    }
    for (String n : notes) {
      out.println("note: " + n);
    }
    out.flush();
  }

  private static String ms(double v) {
    if (Double.isNaN(v)) {
      return "-";
    }
    return String.format(Locale.ROOT, v < 10 ? "%.3f" : "%.1f", v);
  }

  private static String rate(double v) {
    if (Double.isNaN(v)) {
      return "-";
    }
    return String.format(Locale.ROOT, v < 10 ? "%.1f" : "%.0f", v);
  }

  private static double mib(long bytes) {
    return bytes / (double) (1 << 20);
  }

  private static String human(int bytes) {
    return bytes >= 1 << 20 ? (bytes >> 20) + " MiB" : (bytes >> 10) + " KiB";
  }

  /** Deterministic pseudo-random bytes, 1 MiB at a time. */
  private static void generate(Path file, long size) throws IOException {
    SplittableRandom rnd = new SplittableRandom(0x5eed);
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW,
        StandardOpenOption.WRITE)) {
      for (long left = size; left > 0; ) {
        buf.clear();
        while (buf.hasRemaining()) {
          buf.putLong(rnd.nextLong());
        }
        buf.flip();
        if (buf.remaining() > left) {
          buf.limit((int) left);
        }
        left -= buf.remaining();
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
    }
  }

  private static void deleteTree(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      log.warn("could not remove {}: {}", dir, e.toString());
    }
  }

  /** Discards bytes (the transfer still hashes them for verification). */
  private static final class NullChannel implements WritableByteChannel {
    @Override
    public int write(ByteBuffer src) {
      int n = src.remaining();
      src.position(src.limit());
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }
}
