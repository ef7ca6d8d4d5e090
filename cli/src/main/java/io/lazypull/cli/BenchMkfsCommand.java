package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code lazypull bench mkfs}: the same tree through lazypull's writer (in this JVM) and
 * through {@code mkfs.erofs}, interleaved A/B so machine noise hits both alike; medians and
 * their ratio. One untimed warm-up of each runs first (page cache, JIT).
 */
@Command(name = "mkfs", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Time lazypull mkfs (in-process) against mkfs.erofs on the same real tree.",
      "Runs are interleaved A/B after one warm-up each; prints medians and the ratio.",
      ""
    })
final class BenchMkfsCommand implements Callable<Integer> {
  @Option(names = "--tree", paramLabel = "DIR", defaultValue = "/usr/share/doc",
      description = "The source tree (default: ${DEFAULT-VALUE}).")
  Path tree;

  @Option(names = "--runs", paramLabel = "N", defaultValue = "5",
      description = "Timed runs of each tool (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--layout", paramLabel = "LAYOUT", defaultValue = "full",
      description = "full (vs mkfs.erofs) or chunked (vs mkfs.erofs --chunksize=1M --blobdev).")
  String layout;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = "Where images are written (default: a temporary directory, removed after).")
  Path workDir;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    Layout l = Layout.fromCliName(layout);
    if (l == Layout.TAR_INDEX) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "mkfs.erofs 1.5 has no tar-index mode to compare with; use full or chunked");
    }
    if (runs < 1) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--runs must be at least 1");
    }
    if (!Files.isDirectory(tree)) {
      throw new java.nio.file.NotDirectoryException(tree.toString());
    }
    Path dir = workDir != null ? Files.createDirectories(workDir) : Files.createTempDirectory("lazypull-bench-mkfs-");
    PrintWriter out = spec.commandLine().getOut();
    try {
      String version = mkfsErofsVersion();
      List<Double> ours = new ArrayList<>();
      List<Double> theirs = new ArrayList<>();
      long[] sizes = new long[2];
      for (int i = -1; i < runs; i++) { // i = -1: warm-up
        double a = timeLazypull(l, dir, sizes);
        double b = timeMkfsErofs(l, dir, sizes);
        if (i >= 0) {
          ours.add(a);
          theirs.add(b);
          out.printf("run %d: lazypull %.3f s, mkfs.erofs %.3f s%n", i + 1, a, b);
          out.flush();
        }
      }
      double ma = median(ours);
      double mb = median(theirs);
      out.printf("%ntree %s, layout %s, %d runs each (interleaved, after one warm-up)%n", tree, l, runs);
      out.printf("%-22s %10s %10s %10s %14s%n", "tool", "median s", "min s", "max s", "output bytes");
      out.printf("%-22s %10.3f %10.3f %10.3f %14d%n", "lazypull mkfs", ma, min(ours), max(ours), sizes[0]);
      out.printf("%-22s %10.3f %10.3f %10.3f %14d%n", version, mb, min(theirs), max(theirs), sizes[1]);
      out.printf("ratio lazypull / mkfs.erofs (medians): %.2f%n", ma / mb);
      out.flush();
    } finally {
      if (workDir == null) {
        deleteTree(dir);
      }
    }
    return 0;
  }

  private double timeLazypull(Layout l, Path dir, long[] sizes) throws IOException {
    Path out = dir.resolve("lazypull.img");
    Path blobs = Files.createDirectories(dir.resolve("lazypull-blobs"));
    long t0 = System.nanoTime();
    var r = Mkfs.builder().layout(l).blobDir(blobs).build().build(tree, out);
    double s = (System.nanoTime() - t0) / 1e9;
    sizes[0] = r.imageBytes() + r.dataBlob().map(b -> b.size()).orElse(0L);
    deleteTree(blobs);
    return s;
  }

  private double timeMkfsErofs(Layout l, Path dir, long[] sizes) throws IOException {
    Path img = dir.resolve("mkfs-erofs.img");
    Path blob = dir.resolve("mkfs-erofs.blob");
    Files.deleteIfExists(img);
    Files.deleteIfExists(blob);
    Files.createFile(img); // mkfs.erofs 1.5 does not create its output
    List<String> cmd = new ArrayList<>(List.of("mkfs.erofs", "--quiet"));
    if (l == Layout.CHUNKED) {
      Files.createFile(blob);
      cmd.addAll(List.of("--chunksize=1048576", "--blobdev=" + blob));
    }
    cmd.addAll(List.of(img.toString(), tree.toString()));
    long t0 = System.nanoTime();
    run(cmd);
    double s = (System.nanoTime() - t0) / 1e9;
    sizes[1] = Files.size(img) + (Files.exists(blob) ? Files.size(blob) : 0);
    return s;
  }

  /**
   * "mkfs.erofs 1.5": 1.5 has no --version; it rejects the option and prints its version
   * banner after the usage text, so the output is searched whatever the exit code.
   */
  private static String mkfsErofsVersion() {
    try {
      Process p = new ProcessBuilder("mkfs.erofs", "--version").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      p.waitFor(10, TimeUnit.SECONDS);
      return out.lines().map(String::strip).filter(l -> l.matches("mkfs\\.erofs \\d.*"))
          .findFirst().orElse("mkfs.erofs");
    } catch (IOException e) {
      return "mkfs.erofs";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "mkfs.erofs";
    }
  }

  private static String run(List<String> cmd) throws IOException {
    Process p;
    try {
      p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    } catch (IOException e) {
      throw new IOException(cmd.get(0) + " is not installed (apt-get install erofs-utils)", e);
    }
    try {
      String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new IOException(String.join(" ", cmd) + " failed: " + output.strip());
      }
      return output;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    }
  }

  static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    s.sort(null);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }

  private static double min(List<Double> xs) {
    return xs.stream().min(Double::compare).orElse(0.0);
  }

  private static double max(List<Double> xs) {
    return xs.stream().max(Double::compare).orElse(0.0);
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    }
  }
}
