package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * The read benchmark's fanotify rows, beside native EROFS and the FUSE shim: a chunked image of
 * this JDK read whole ({@code tar cf - . | cat}, GNU tar skips data written to /dev/null), page
 * cache dropped before every run, rows interleaved, medians. lib/ct.sym (8 MB) is left out of
 * every read, so that the "marked" stack keeps a hole and its blob stays marked: there, every
 * read raises pre-content events that the relay answers from the cache file (the cost of a
 * marked blob); in the plain warm stack the blob became complete and was unmarked (no events).
 * Not part of the suite: {@code mvn -pl cli test -Dtest=FanotifyReadBench -Dlazypull.bench=true
 * [-Dlazypull.bench.rounds=5]} (root; drops the page cache). Results: docs/bench-fanotify.md.
 */
@EnabledIfSystemProperty(named = "lazypull.bench", matches = "true")
class FanotifyReadBench {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
  private static final String READ = "tar cf - --exclude=./lib/ct.sym . | cat > /dev/null";

  @TempDir static Path tmp;

  static double timed(Path dir) throws Exception {
    Process drop = new ProcessBuilder("bash", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches").inheritIO().start();
    if (drop.waitFor() != 0) {
      throw new AssertionError("drop_caches");
    }
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder("bash", "-c", "set -o pipefail; " + READ).directory(dir.toFile()).inheritIO().start();
    if (p.waitFor() != 0) {
      throw new AssertionError("read of " + dir + " failed");
    }
    return (System.nanoTime() - t0) / 1e9;
  }

  static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    Collections.sort(s);
    return s.get(s.size() / 2);
  }

  private Stack serving(String name, Path backend, Frontends f) throws Exception {
    Stack s = new Stack(tmp.resolve(name), "file://" + backend).frontend(f).withQuietLogFiles();
    s.startShim().startDaemon();
    return s;
  }

  @Test
  void jdkImage_nativeVsFuseShimVsFanotify_warmAndCold() throws Exception {
    Requirements.assumeFuse();
    int rounds = Integer.getInteger("lazypull.bench.rounds", 5);
    Path backend = Files.createDirectories(tmp.resolve("backend"));
    MkfsResult image = Cluster.buildImage(JDK, backend, Layout.CHUNKED);
    Path meta = backend.resolve(image.fsid());
    Path blob = image.dataBlob().orElseThrow().path();
    long bytes;
    try (var w = Files.walk(JDK)) {
      bytes = w.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) && !p.endsWith("lib/ct.sym"))
          .mapToLong(p -> p.toFile().length()).sum();
    }

    Path nativeMnt = Files.createDirectories(tmp.resolve("native"));
    Mounts.mountErofs(meta, nativeMnt, List.of(blob));
    Map<String, List<Double>> rows = new LinkedHashMap<>();
    List<Stack> stacks = new ArrayList<>();
    try {
      Stack fuse = serving("fuse-warm", backend, Frontends.FUSE);
      stacks.add(fuse);
      Stack fan = serving("fanotify-warm", backend, Frontends.FANOTIFY);
      stacks.add(fan);
      Stack marked = serving("fanotify-marked", backend, Frontends.FANOTIFY);
      stacks.add(marked);
      Path fuseMnt = Files.createDirectories(tmp.resolve("fuse-mnt"));
      Path fanMnt = Files.createDirectories(tmp.resolve("fan-mnt"));
      Path markedMnt = Files.createDirectories(tmp.resolve("marked-mnt"));
      fuse.mount(image.fsid(), null, fuseMnt);
      fan.mount(image.fsid(), null, fanMnt);
      marked.mount(image.fsid(), null, markedMnt);
      // Fill the warm caches: every byte once (ct.sym too), except the marked stack's ct.sym.
      for (Path m : List.of(fuseMnt, fanMnt)) {
        new ProcessBuilder("bash", "-c", "tar cf - . | cat > /dev/null").directory(m.toFile()).inheritIO().start().waitFor();
      }
      timed(markedMnt);

      for (int r = 0; r < rounds; r++) {
        rows.computeIfAbsent("native EROFS, file-backed on the local blobs", k -> new ArrayList<>()).add(timed(nativeMnt));
        rows.computeIfAbsent("FUSE shim, warm (cache files complete)", k -> new ArrayList<>()).add(timed(fuseMnt));
        rows.computeIfAbsent("fanotify, warm (blob complete: unmarked, no events)", k -> new ArrayList<>()).add(timed(fanMnt));
        rows.computeIfAbsent("fanotify, warm, blob still marked (events answered from the cache)", k -> new ArrayList<>())
            .add(timed(markedMnt));
        // Cold: a fresh cache each time, from the file:// backend.
        for (Frontends f : List.of(Frontends.FUSE, Frontends.FANOTIFY)) {
          try (Stack cold = serving("cold-" + f.name().toLowerCase() + "-" + r, backend, f)) {
            Path mnt = Files.createDirectories(cold.dir.resolve("mnt"));
            cold.mount(image.fsid(), null, mnt);
            rows.computeIfAbsent((f == Frontends.FUSE ? "FUSE shim" : "fanotify") + ", cold (file:// backend, empty cache)",
                k -> new ArrayList<>()).add(timed(mnt));
          }
        }
      }
    } finally {
      for (Stack s : stacks) {
        s.close();
      }
      Mounts.umount(nativeMnt, 0);
    }
    System.out.printf("%nJDK image (%s): %d MB read per run, %d rounds, medians%n", image.fsid().substring(0, 12),
        bytes / 1_000_000, rounds);
    System.out.println("| how | median | MB/s | runs (s) |");
    System.out.println("| --- | --- | --- | --- |");
    for (Map.Entry<String, List<Double>> e : rows.entrySet()) {
      double m = median(e.getValue());
      StringBuilder runs = new StringBuilder();
      for (double d : e.getValue()) {
        runs.append(runs.length() == 0 ? "" : ", ").append(String.format("%.3f", d));
      }
      System.out.printf("| %s | %.3f s | %.0f | %s |%n", e.getKey(), m, bytes / 1e6 / m, runs);
    }
    for (String name : List.of("fanotify-warm", "fanotify-marked")) {
      String log = Files.readString(tmp.resolve(name).resolve("logs/relay.log"));
      log.lines().filter(l -> l.contains("relay stopped; stats:")).forEach(l -> System.out.println(name + ": "
          + l.substring(l.indexOf("stats:"))));
    }
  }
}
