package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TreeDiff;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * 'lazypull up' as a user runs it: one foreground command mounts an image served on demand;
 * the daemon it started is SIGKILLed and comes back by itself; SIGTERM unmounts the image and
 * stops everything within seconds.
 */
class UpCommandTest {
  private static final Path JDK_LIB = Path.of("/usr/lib/jvm/java-17-openjdk-amd64/lib");

  @TempDir Path tmp;
  /** The children of every 'up' this test killed: they stop on their own, maybe after the test. */
  private final List<ProcessHandle> orphans = new java.util.ArrayList<>();

  /**
   * SIGKILL to {@code up}. Its children stop on their own (they asked the kernel for a SIGTERM
   * when it dies), but after it: a daemon stopping writes its prefetch lists into the cache dir.
   * {@link #awaitOrphans} waits for them before the temp dir is deleted under them.
   */
  private void kill(Child up) {
    if (up.isAlive()) {
      orphans.addAll(up.process().descendants().toList());
    }
    up.kill();
  }

  @AfterEach
  void awaitOrphans() throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    for (ProcessHandle p : orphans) {
      long left = deadline - System.nanoTime();
      try {
        p.onExit().get(Math.max(left, 0), TimeUnit.NANOSECONDS);
      } catch (java.util.concurrent.TimeoutException e) {
        throw new AssertionError("process " + p.pid() + " of a killed 'up' still runs after 60 s", e);
      }
    }
  }

  @Test
  void up_servesTheImage_restartsAKilledDaemon_andSigtermStopsEverything() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend");
    MkfsResult image = Cluster.buildImage(JDK_LIB, blobs, Layout.CHUNKED);
    Path target = Files.createDirectories(tmp.resolve("mnt"));
    Path cache = tmp.resolve("cache");
    Child up = Child.lazypull("up", "256m", List.of("up", "--backend", "file://" + blobs, "--fsid", image.fsid(),
        "--cache-dir", cache.toString(), target.toString())).start();
    try {
      Stack.await("the mount", () -> isErofs(target), up);
      ProcessHandle first = daemonOf(up).orElseThrow();
      Posix.kill((int) first.pid(), 9);
      // Reads go on: up starts the daemon again and it takes the device back from the holder.
      TreeDiff.assertSame(JDK_LIB, target, TreeDiff.options().root(false));
      ProcessHandle second = daemonOf(up).orElseThrow();
      assertThat(second.pid()).isNotEqualTo(first.pid());
      List<ProcessHandle> children = up.process().toHandle().children().toList();
      assertThat(children).as("the daemon: up keeps the holder and runs the FUSE shim itself").hasSize(1);

      long t0 = System.nanoTime();
      Posix.kill((int) up.pid(), 15);
      assertThat(up.process().waitFor(30, TimeUnit.SECONDS)).as("up exits after SIGTERM").isTrue();
      long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
      assertThat(seconds).as("stopped within seconds").isLessThan(30);
      assertThat(Mounts.isMountPoint(target)).as("the image is unmounted").isFalse();
      assertThat(Stack.isFuseMounted(cache.resolve("shim"))).as("the shim is unmounted").isFalse();
      for (ProcessHandle c : children) {
        c.onExit().get(10, TimeUnit.SECONDS);
        assertThat(c.isAlive()).as("child %s stopped", c.pid()).isFalse();
      }
    } finally {
      kill(up); // SIGKILL: its children stop too (they asked the kernel for a signal when it dies)
      Mounts.unmountOrDetach(target);
      Mounts.unmountOrDetach(cache.resolve("shim"));
    }
  }

  @Test
  void aStartRecordsAPrefetchList_andTheNextStartFromAnEmptyCacheFetchesItBeforeAnyRead() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend");
    MkfsResult image = Cluster.buildImage(JDK_LIB, blobs, Layout.CHUNKED);
    MkfsResult.DataBlob data = image.dataBlob().orElseThrow();
    Path target = Files.createDirectories(tmp.resolve("mnt"));
    Path cache = tmp.resolve("cache");
    Path list = cache.resolve("state/prefetch").resolve(data.sha256Hex());
    Path log1 = tmp.resolve("up1.log");
    Child first = up(blobs, image.fsid(), cache, target, log1, "--prefetch", "none");
    try {
      Stack.await("the mount", () -> isErofs(target), first);
      assertThat(Files.mismatch(target.resolve("jrt-fs.jar"), JDK_LIB.resolve("jrt-fs.jar"))).isEqualTo(-1L);
      Posix.kill((int) first.pid(), 15); // the daemon writes the list as it stops
      assertThat(first.process().waitFor(30, TimeUnit.SECONDS)).isTrue();
    } finally {
      kill(first);
      Mounts.unmountOrDetach(target);
    }
    List<String> ranges = Files.readAllLines(list).stream().filter(l -> !l.startsWith("#")).toList();
    assertThat(ranges).as("what reading jrt-fs.jar fetched").isNotEmpty();
    long listed = ranges.stream().mapToLong(l -> Long.parseLong(l.split(" ")[1])).sum();
    assertThat(listed).isLessThan(data.size() / 4);

    run("rm", "-rf", cache.resolve("blobs").toString()); // an empty cache; the state (and list) stays
    Path log2 = tmp.resolve("up2.log");
    Child second = up(blobs, image.fsid(), cache, target, log2, "--prefetch", "list");
    try {
      Stack.await("the mount", () -> isErofs(target), second);
      awaitLog(log2, "prefetch list of blob " + image.fsid() + "/" + data.sha256Hex() + ": " + ranges.size()
          + " ranges", second);
      Path cacheFile;
      try (var files = Files.walk(cache.resolve("blobs"))) {
        cacheFile = files.filter(p -> p.getFileName().toString().equals(data.sha256Hex())).findFirst().orElseThrow();
      }
      long first0 = Long.parseLong(ranges.get(0).split(" ")[0]);
      int fd = Posix.open(cacheFile.toString(), Posix.O_RDONLY, 0);
      try {
        assertThat(Posix.seekHole(fd, first0)).as("the first listed range is cached before any read")
            .isGreaterThan(first0);
      } finally {
        Posix.close(fd);
      }
      assertThat(Files.readString(log2)).as("lists exist: nothing recorded").doesNotContain(" recorded (");
      assertThat(Files.mismatch(target.resolve("jrt-fs.jar"), JDK_LIB.resolve("jrt-fs.jar"))).isEqualTo(-1L);
    } finally {
      Posix.kill((int) second.pid(), 15);
      second.process().waitFor(30, TimeUnit.SECONDS);
      kill(second);
      Mounts.unmountOrDetach(target);
    }
  }

  private static void run(String... cmd) throws Exception {
    assertThat(new ProcessBuilder(cmd).inheritIO().start().waitFor()).isZero();
  }

  private static final Path LEGAL = JDK_LIB.resolveSibling("legal");

  /** 'lazypull up' of {@code fsid} from file:// {@code blobs} on {@code target}, logging to {@code log}. */
  private static Child up(Path blobs, String fsid, Path cache, Path target, Path log, String... more)
      throws java.io.IOException {
    List<String> args = new java.util.ArrayList<>(List.of("up", "--backend", "file://" + blobs, "--fsid", fsid,
        "--cache-dir", cache.toString()));
    args.addAll(List.of(more));
    args.add(target.toString());
    return Child.lazypull("up", "256m", args).logTo(log).start();
  }

  /** Waits until {@code log} has {@code line} (bounded; fails early if the process exits). */
  private static void awaitLog(Path log, String line, Child c) throws Exception {
    Stack.await("'" + line + "' in " + log, () -> {
      try {
        return Files.readString(log).contains(line);
      } catch (java.io.IOException e) {
        return false;
      }
    }, c);
  }

  private static long mountsOn(Path p) throws java.io.IOException {
    return Mounts.mountInfos().stream().filter(m -> m.mountPoint().equals(p.toString())).count();
  }

  @Test
  void aSecondUpOnTheSameCacheDir_isRefused_andTheFirstKeepsServing() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend3");
    MkfsResult image = Cluster.buildImage(LEGAL, blobs, Layout.CHUNKED);
    Path cache = tmp.resolve("cache3");
    Path first = Files.createDirectories(tmp.resolve("mnt3a"));
    Path second = Files.createDirectories(tmp.resolve("mnt3b"));
    Child up1 = up(blobs, image.fsid(), cache, first, tmp.resolve("up3a.log"));
    Child up2 = null;
    try {
      awaitLog(tmp.resolve("up3a.log"), "mounted on " + first, up1);
      Path log2 = tmp.resolve("up3b.log");
      up2 = up(blobs, image.fsid(), cache, second, log2);
      assertThat(up2.process().waitFor(120, TimeUnit.SECONDS)).as("the second up exits").isTrue();
      up2.stop(5);
      assertThat(up2.exitValue()).isEqualTo(1);
      assertThat(Files.readString(log2)).contains("another 'lazypull up' (pid " + up1.pid() + ") is running on " + cache)
          .doesNotContain("[holder]");
      assertThat(Mounts.isMountPoint(second)).isFalse();
      assertThat(Stack.isFuseMounted(cache.resolve("shim"))).as("the first stack's shim is still mounted").isTrue();
      TreeDiff.assertSame(LEGAL, first, TreeDiff.options().root(false));
    } finally {
      if (up2 != null) {
        kill(up2);
        Mounts.unmountOrDetach(second);
      }
      kill(up1);
      Mounts.unmountOrDetach(first);
      Mounts.unmountOrDetach(cache.resolve("shim"));
    }
  }

  @Test
  void upAfterAnUpKilledWithSigkill_clearsTheDeadMount_andServesExactlyOneMount() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend4");
    MkfsResult image = Cluster.buildImage(LEGAL, blobs, Layout.CHUNKED);
    Path cache = tmp.resolve("cache4");
    Path target = Files.createDirectories(tmp.resolve("mnt4"));
    Child up1 = up(blobs, image.fsid(), cache, target, tmp.resolve("up4a.log"));
    Child up2 = null;
    try {
      awaitLog(tmp.resolve("up4a.log"), "mounted on " + target, up1);
      kill(up1); // SIGKILL: no shutdown hook; the image stays mounted, its shim goes
      Path log2 = tmp.resolve("up4b.log");
      up2 = up(blobs, image.fsid(), cache, target, log2); // at once: the old children may still be stopping
      awaitLog(log2, "mounted on " + target, up2);
      // up1's FUSE shim died with it (it ran in up1's JVM): its dead mount and the image on it
      // are cleared together; a shim that had unmounted itself would leave the image only.
      assertThat(Files.readString(log2)).containsAnyOf("lazily unmounting " + target + ": its EROFS mount of",
          "unmounted the dead image left there by an 'up' that was killed");
      assertThat(mountsOn(target)).as("mounts on the target").isEqualTo(1);
      assertThat(mountsOn(cache.resolve("shim"))).as("mounts of the shim").isEqualTo(1);
      TreeDiff.assertSame(LEGAL, target, TreeDiff.options().root(false));
    } finally {
      if (up2 != null) {
        kill(up2);
      }
      kill(up1);
      for (int i = 0; i < 4 && Mounts.unmountOrDetach(target); i++) {
        // every stacked mount
      }
      Mounts.unmountOrDetach(cache.resolve("shim"));
    }
  }

  @Test
  void upOnATargetWithAnotherMount_isRefused_andLeavesIt() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend5");
    MkfsResult image = Cluster.buildImage(LEGAL, blobs, Layout.CHUNKED);
    Path target = Files.createDirectories(tmp.resolve("mnt5"));
    Mounts.mount("tmpfs", target.toString(), "tmpfs", 0, "size=1m");
    Child up = null;
    try {
      Path log = tmp.resolve("up5.log");
      up = up(blobs, image.fsid(), tmp.resolve("cache5"), target, log);
      assertThat(up.process().waitFor(120, TimeUnit.SECONDS)).as("up exits").isTrue();
      up.stop(5);
      assertThat(up.exitValue()).isEqualTo(1);
      assertThat(Files.readString(log)).contains(target + " is already a mount point (tmpfs tmpfs)")
          .doesNotContain("[holder]");
      assertThat(Mounts.mountInfo(target).fsType()).isEqualTo("tmpfs");
    } finally {
      if (up != null) {
        kill(up);
      }
      for (int i = 0; i < 4 && Mounts.unmountOrDetach(target); i++) {
        // every stacked mount
      }
      Mounts.unmountOrDetach(tmp.resolve("cache5/shim"));
    }
  }

  @Test
  void upOfABadMetaBlob_saysWhichBlobAndWhatIsWrong() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend6");
    MkfsResult image = Cluster.buildImage(LEGAL, blobs, Layout.CHUNKED);
    Path meta = blobs.resolve(image.fsid());
    byte[] bytes = Files.readAllBytes(meta);
    bytes[1500] ^= 1; // inside the superblock's block: the daemon's sha256 check fails first
    Files.write(meta, bytes);
    byte[] garbage = "not an EROFS image ".repeat(300).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    String garbageId = io.lazypull.backend.Digests.sha256Hex(java.nio.ByteBuffer.wrap(garbage));
    Files.write(blobs.resolve(garbageId), garbage); // right by name, wrong by content
    Path target = Files.createDirectories(tmp.resolve("mnt6"));
    String[][] cases = {
      {image.fsid(), "cannot read the meta blob of image " + image.fsid() + " through the shim at ",
        "fetched directly: file://" + blobs + ": ", "sha256 mismatch for sha256:" + image.fsid()},
      {garbageId, "the meta blob of image " + garbageId, "is not a valid EROFS image: superblock: bad magic", ""},
    };
    for (String[] c : cases) {
      Path log = tmp.resolve("up6-" + c[0].substring(0, 8) + ".log");
      Child up = up(blobs, c[0], tmp.resolve("cache6"), target, log);
      try {
        assertThat(up.process().waitFor(120, TimeUnit.SECONDS)).as("up exits").isTrue();
        up.stop(5);
        String out = Files.readString(log);
        assertThat(up.exitValue()).as(out).isEqualTo(1);
        String error = out.lines().filter(l -> l.contains("lazypull up: error: ")).findFirst().orElse("");
        assertThat(error).contains(c[1]).contains(c[2]).contains(c[3]);
        assertThat(Mounts.isMountPoint(target)).isFalse();
      } finally {
        kill(up);
        Mounts.unmountOrDetach(target);
        Mounts.unmountOrDetach(tmp.resolve("cache6/shim"));
      }
    }
  }

  private static boolean isErofs(Path target) {
    try {
      Mounts.MountInfo mi = Mounts.mountInfo(target);
      return mi != null && mi.fsType().equals("erofs");
    } catch (java.io.IOException e) {
      return false;
    }
  }

  private static List<String> commandLine(long pid) {
    try {
      return List.of(Files.readString(Path.of("/proc/" + pid + "/cmdline")).split("\0"));
    } catch (java.io.IOException e) {
      return List.of();
    }
  }

  /** The daemon process 'up' runs now, waiting for it to appear (it may be restarting). */
  private static Optional<ProcessHandle> daemonOf(Child up) throws InterruptedException {
    for (int i = 0; i < 600; i++) {
      Optional<ProcessHandle> d = up.process().toHandle().children()
          .filter(c -> commandLine(c.pid()).contains("daemon"))
          .filter(ProcessHandle::isAlive)
          .findFirst();
      if (d.isPresent()) {
        return d;
      }
      Thread.sleep(100);
    }
    return Optional.empty();
  }

  @Test
  void upKilledWithSigkill_itsChildrenStopToo() throws Exception {
    Requirements.assumeFuse();
    Path blobs = tmp.resolve("backend2");
    MkfsResult image = Cluster.buildImage(JDK_LIB.resolve("security"), blobs, Layout.CHUNKED);
    Path target = Files.createDirectories(tmp.resolve("mnt2"));
    Path cache = tmp.resolve("cache2");
    Child up = Child.lazypull("up", "256m", List.of("up", "--backend", "file://" + blobs, "--fsid", image.fsid(),
        "--cache-dir", cache.toString(), target.toString())).start();
    try {
      Stack.await("the mount", () -> isErofs(target), up);
      List<ProcessHandle> children = up.process().toHandle().children().toList();
      assertThat(children).as("the daemon (up runs the holder and the FUSE shim itself)").hasSize(1);
      kill(up);
      for (ProcessHandle c : children) {
        c.onExit().get(30, TimeUnit.SECONDS);
        assertThat(c.isAlive()).as("child %s stopped after up died", c.pid()).isFalse();
      }
    } finally {
      Mounts.unmountOrDetach(target);
      Mounts.unmountOrDetach(cache.resolve("shim"));
    }
  }

  /**
   * 'up --frontend fanotify' SIGKILLed: its relay detaches the image (nobody will restart it), a
   * file a process still has open in it reads EIO for data not fetched, never zeros (the holder
   * keeps the relay's group until that file is closed), and the next 'up' mounts the target again.
   */
  @Test
  void fanotify_upKilledWithSigkill_anOpenFileReadsEioNotZeros_andTheNextUpServes() throws Exception {
    Requirements.assumeRoot();
    String why = io.lazypull.sys.Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    Path src = Files.createDirectories(tmp.resolve("src5"));
    byte[] big = new byte[4 << 20];
    new java.util.Random(5).nextBytes(big);
    Files.write(src.resolve("big"), big);
    Files.writeString(src.resolve("small"), "small\n");
    Path blobs = tmp.resolve("backend5");
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path cache = tmp.resolve("cache5");
    Path target = Files.createDirectories(tmp.resolve("mnt5"));
    Child up1 = up(blobs, image.fsid(), cache, target, tmp.resolve("up5a.log"), "--frontend", "fanotify");
    Child up2 = null;
    Process holdsOpen = null;
    try {
      awaitLog(tmp.resolve("up5a.log"), "mounted on " + target, up1);
      // Opens 'big' (nothing of it read yet), waits for a line, then reads it all.
      holdsOpen = new ProcessBuilder("python3", "-c", "import sys\nf=open(sys.argv[1],'rb')\nprint('open',flush=True)\n"
          + "sys.stdin.readline()\ntry:\n  d=f.read()\n  print('read',len(d),d.count(0))\nexcept OSError as e:\n"
          + "  print('error',e.errno)\n", target.resolve("big").toString()).redirectErrorStream(true).start();
      java.io.BufferedReader out = new java.io.BufferedReader(new java.io.InputStreamReader(holdsOpen.getInputStream()));
      assertThat(out.readLine()).isEqualTo("open");
      kill(up1);
      Stack.await("the target detached", () -> !isErofs(target), null);
      holdsOpen.getOutputStream().write('\n');
      holdsOpen.getOutputStream().flush();
      assertThat(holdsOpen.waitFor(60, TimeUnit.SECONDS)).as("the read ends").isTrue();
      assertThat(out.readLine()).as("data not fetched, no relay: EIO, never zeros").isEqualTo("error 5");
      Path log2 = tmp.resolve("up5b.log");
      up2 = up(blobs, image.fsid(), cache, target, log2, "--frontend", "fanotify");
      awaitLog(log2, "mounted on " + target, up2);
      assertThat(mountsOn(target)).as("mounts on the target").isEqualTo(1);
      TreeDiff.assertSame(src, target, TreeDiff.options().root(false));
    } finally {
      if (holdsOpen != null) {
        holdsOpen.destroyForcibly();
      }
      if (up2 != null) {
        kill(up2);
      }
      kill(up1);
      for (int i = 0; i < 4 && Mounts.unmountOrDetach(target); i++) {
        // every stacked mount
      }
    }
  }
}
