package io.lazypull.cli.shim;

import io.lazypull.daemon.shim.ShimDevice;
import io.lazypull.shim.fuse.FuseShim;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * Throughput of a warm blob (cached on disk, page cache dropped) read through the shim, against
 * the raw cache file; and an EROFS tree read through the shim against a native file-backed mount
 * of the same images. Not part of the suite: run with
 * {@code mvn -pl cli test -Dtest=ShimThroughputBench -Dlazypull.bench=true} (drops the page cache).
 */
@EnabledIfSystemProperty(named = "lazypull.bench", matches = "true")
class ShimThroughputBench {
  @TempDir Path tmp;

  static double sh(String script) throws Exception {
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder("bash", "-c", script).inheritIO().start();
    if (p.waitFor() != 0) {
      throw new AssertionError("failed: " + script);
    }
    return (System.nanoTime() - t0) / 1e9;
  }

  static void dropCaches() throws Exception {
    sh("sync; echo 3 > /proc/sys/vm/drop_caches");
  }

  static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    Collections.sort(s);
    return s.get(s.size() / 2);
  }

  @Test
  void warmBlob_throughShim_vsRawCacheFile() throws Exception {
    Requirements.assumeFuse();
    int size = Integer.getInteger("lazypull.bench.mib", 256) << 20;
    byte[] big = new byte[size];
    SplittableRandom r = new SplittableRandom(1);
    for (int i = 0; i < size; i += 8) {
      long v = r.nextLong();
      for (int j = 0; j < 8; j++) {
        big[i + j] = (byte) (v >>> (8 * j));
      }
    }
    Map<String, byte[]> blobs = new ConcurrentHashMap<>(Map.of("big", big));
    Path mp = tmp.resolve("mnt");
    Path sock = tmp.resolve("dev.sock");
    try (FuseShim shim = FuseShim.start(mp, tmp.resolve("cache"), sock, FuseShim.Options.DEFAULT);
        TestBlobDaemon daemon = new TestBlobDaemon(ShimDevice.connect(sock), blobs)) {
      String fuseFile = mp.resolve("dom/big").toString();
      String cacheFile = tmp.resolve("cache/erofs,dom/big").toString();
      double cold = sh("dd if=" + fuseFile + " of=/dev/null bs=1M status=none");
      long started0 = ManagementFactory.getThreadMXBean().getTotalStartedThreadCount();
      List<Double> raw = new ArrayList<>();
      List<Double> fuse = new ArrayList<>();
      List<Double> hot = new ArrayList<>();
      int rounds = Integer.getInteger("lazypull.bench.rounds", 3);
      for (int i = 0; i < rounds; i++) {
        long t0 = ManagementFactory.getThreadMXBean().getTotalStartedThreadCount();
        dropCaches();
        raw.add(sh("dd if=" + cacheFile + " of=/dev/null bs=1M status=none"));
        dropCaches();
        fuse.add(sh("dd if=" + fuseFile + " of=/dev/null bs=1M status=none"));
        hot.add(sh("dd if=" + fuseFile + " of=/dev/null bs=1M status=none"));
        System.out.printf("BENCH round %d: raw %.3f s, shim %.3f s, JVM threads started %d%n", i, raw.get(i),
            fuse.get(i), ManagementFactory.getThreadMXBean().getTotalStartedThreadCount() - t0);
      }
      long threads = ManagementFactory.getThreadMXBean().getTotalStartedThreadCount() - started0;
      double mib = size / 1048576.0;
      System.out.printf("BENCH blob %.0f MiB: cold through shim+daemon %.2f s (%.0f MiB/s)%n", mib, cold, mib / cold);
      System.out.printf("BENCH raw cache file, page cache dropped: median %.3f s (%.0f MiB/s) %s%n", median(raw), mib / median(raw), raw);
      System.out.printf("BENCH through the shim, page cache dropped: median %.3f s (%.0f MiB/s) %s%n", median(fuse), mib / median(fuse), fuse);
      System.out.printf("BENCH through the shim, FUSE page cache hot: median %.3f s (%.0f MiB/s)%n", median(hot), mib / median(hot));
      System.out.printf("BENCH ratio shim/raw %.2f; FUSE reads %d; JVM threads started during the warm runs: %d%n",
          median(fuse) / median(raw), shim.shim().stats().fuseReads(), threads);
      System.out.println("BENCH stats " + shim.shim().stats());
    }
  }

  @Test
  void erofsTree_throughShim_vsNativeFileBackedMount() throws Exception {
    Requirements.assumeFuse();
    Requirements.assumeCommand("mkfs.erofs");
    Path src = Path.of(System.getProperty("lazypull.bench.tree", System.getProperty("java.home")));
    Path meta = tmp.resolve("meta.img");
    Path blob = tmp.resolve("blob.img");
    sh("mkfs.erofs --quiet --chunksize=65536 --blobdev=" + blob + " " + meta + " " + src + "/");
    Map<String, byte[]> blobs = new ConcurrentHashMap<>();
    blobs.put("meta", Files.readAllBytes(meta));
    blobs.put("blob1", Files.readAllBytes(blob));
    Path nat = Files.createDirectories(tmp.resolve("native"));
    Path viaShim = Files.createDirectories(tmp.resolve("target"));
    Path mp = tmp.resolve("mnt");
    Path sock = tmp.resolve("dev.sock");
    String tar = "cd %s && tar cf - . | cat > /dev/null";
    try (FuseShim shim = FuseShim.start(mp, tmp.resolve("cache"), sock, FuseShim.Options.DEFAULT);
        TestBlobDaemon daemon = new TestBlobDaemon(ShimDevice.connect(sock), blobs)) {
      Mounts.mountErofs(meta, nat, List.of(blob));
      Mounts.mountErofs(mp.resolve("dom/meta"), viaShim, List.of(mp.resolve("dom/blob1")));
      try {
        double cold = sh(String.format(tar, viaShim));
        List<Double> n = new ArrayList<>();
        List<Double> s = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
          Mounts.umount(nat, 0);
          Mounts.umount(viaShim, 0);
          dropCaches();
          Mounts.mountErofs(meta, nat, List.of(blob));
          Mounts.mountErofs(mp.resolve("dom/meta"), viaShim, List.of(mp.resolve("dom/blob1")));
          n.add(sh(String.format(tar, nat)));
          s.add(sh(String.format(tar, viaShim)));
        }
        double mb = Files.size(blob) / 1e6;
        System.out.printf("BENCH EROFS tree %s: blob %.0f MB, meta %d KB%n", src, mb, Files.size(meta) / 1024);
        System.out.printf("BENCH tar|cat cold through shim+daemon: %.2f s%n", cold);
        System.out.printf("BENCH tar|cat native file-backed, page cache dropped: median %.3f s (%.0f MB/s) %s%n", median(n), mb / median(n), n);
        System.out.printf("BENCH tar|cat through the warm shim, page cache dropped: median %.3f s (%.0f MB/s) %s%n", median(s), mb / median(s), s);
        System.out.println("BENCH stats " + shim.shim().stats());
      } finally {
        for (Path p : List.of(nat, viaShim)) {
          try {
            Mounts.umount(p, 0);
          } catch (ErrnoException e) {
            Mounts.umount(p, Mounts.MNT_DETACH);
          }
        }
      }
    }
  }
}
