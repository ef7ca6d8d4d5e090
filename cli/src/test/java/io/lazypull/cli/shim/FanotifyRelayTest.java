package io.lazypull.cli.shim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.lazypull.cli.Main;
import io.lazypull.daemon.failover.HolderServer;
import io.lazypull.daemon.shim.ShimDevice;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.shim.fanotify.FanotifyRelay;
import io.lazypull.shim.ondemand.CacheObject;
import io.lazypull.shim.ondemand.ObjectState;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Fanotify;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fanotify front end in one JVM, on this kernel: the relay (shim core + pre-content
 * events), a daemon on ShimDevice, 'lazypull mount --frontend fanotify', and the kernel's EROFS
 * mounted file-backed on the relay's cache files.
 *
 * <pre>
 *   target/ (EROFS) --reads--> cache/erofs,dom/&lt;blob&gt; (sparse, FAN_PRE_ACCESS)
 *        event -> FanotifyRelay --READ--> TestBlobDaemon --pwrite--> the same cache file
 * </pre>
 */
class FanotifyRelayTest {
  @TempDir Path tmp;
  Path sock;
  Path cacheDir;
  Path target;
  final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
  FanotifyRelay relay;
  TestBlobDaemon daemon;
  Path holderSock;
  HolderServer holder;

  @BeforeEach
  void setUp() throws IOException {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    sock = tmp.resolve("dev.sock");
    cacheDir = tmp.resolve("cache");
    target = Files.createDirectories(tmp.resolve("target"));
    startHolder(HolderServer.RELAY_GRACE_MILLIS);
  }

  /** What 'lazypull holder' runs, in this JVM: it keeps the relay's group. */
  void startHolder(long relayGraceMillis) throws IOException {
    holderSock = tmp.resolve("holder-" + System.nanoTime() + ".sock");
    holder = HolderServer.listen(holderSock, relayGraceMillis);
    Thread t = new Thread(() -> {
      try {
        holder.serve();
      } catch (IOException e) {
        // closed
      }
    }, "test-holder");
    t.setDaemon(true);
    t.start();
  }

  @AfterEach
  void tearDown() throws IOException {
    down();
    if (holder != null) {
      holder.close();
    }
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      assertThat(m.mountPoint()).as("mounts left behind").doesNotStartWith(tmp.toString());
    }
  }

  void up() throws Exception {
    relay = FanotifyRelay.start(cacheDir, sock, holderSock);
    daemon = new TestBlobDaemon(ShimDevice.connect(sock), blobs);
  }

  void down() throws IOException {
    Mounts.unmountOrDetach(target);
    if (daemon != null) {
      daemon.close();
      assertThat(daemon.error).as("daemon error").isNull();
      daemon = null;
    }
    if (relay != null) {
      relay.close();
      relay = null;
    }
  }

  /** A chunked image of {@code src}; its meta and data blob become the daemon's blobs. */
  String image(Path src) throws IOException {
    Path blobDir = Files.createDirectories(tmp.resolve("blobs"));
    MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).blobDir(blobDir).build().build(src, tmp.resolve("meta"));
    blobs.put(r.fsid(), Files.readAllBytes(tmp.resolve("meta")));
    MkfsResult.DataBlob data = r.dataBlob().orElseThrow();
    blobs.put(data.sha256Hex(), Files.readAllBytes(data.path()));
    return r.fsid();
  }

  int mount(String fsid) {
    return Main.execute("mount", "--frontend", "fanotify", "--cache-dir", cacheDir.toString(), "--domain", "dom",
        "--fsid", fsid, target.toString());
  }

  /** Random files only: reading them all reads every block of the data blob. */
  Path randomTree() throws IOException {
    Path src = Files.createDirectories(tmp.resolve("src"));
    Files.createDirectories(src.resolve("dir/nested"));
    Files.write(src.resolve("small"), ShimFuseTest.random(5, 1));
    Files.write(src.resolve("big"), ShimFuseTest.random(3_000_000, 2));
    Files.write(src.resolve("dir/nested/deep"), ShimFuseTest.random(700_001, 3));
    for (int i = 0; i < 20; i++) {
      Files.write(src.resolve("dir/f" + i), ShimFuseTest.random(40_000 + i * 977, 10 + i));
    }
    return src;
  }

  static void dropCaches() throws IOException {
    Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3");
  }

  @Test
  void generatedTree_everyFileMatches_noEventFromTheDaemonsWrites() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("gen")), false);
    String fsid = image(src);
    up();
    assertThat(mount(fsid)).isZero();
    assertTimeoutPreemptively(Duration.ofSeconds(120), () -> TreeDiff.assertSame(src, target, TreeDiff.options()));
    // The daemon's pwrites go through fds opened before the marks: had they raised events, the
    // relay would have waited on itself (a hang above) or seen events of the daemon's pid.
    assertThat(relay.stats().events()).isPositive();
    assertThat(relay.stats().fetched()).isPositive();
    assertThat(relay.stats().denied()).isZero();
    assertThat(relay.stats().unknown()).isZero();
    assertThat(relay.shim().stats().readFailures()).isZero();
  }

  @Test
  void everyBlockRead_blobIsUnmarked_andLaterReadsRaiseNoEvents() throws Exception {
    Path src = randomTree();
    String fsid = image(src);
    up();
    assertThat(mount(fsid)).isZero();
    Path meta = cacheDir.resolve("erofs,dom").resolve(fsid);
    int fd = Posix.open(meta.toString(), Posix.O_RDONLY, 0);
    try {
      assertThat(Posix.seekHole(fd, 0)).as("the meta blob is complete before mount(2)").isEqualTo(Files.size(meta));
    } finally {
      Posix.close(fd);
    }
    assertThat(ShimFuseTest.digests(target)).isEqualTo(ShimFuseTest.digests(src));
    assertThat(relay.stats().unmarks()).as("the data blob is complete: unmarked").isEqualTo(1);
    long events = relay.stats().events();

    dropCaches();
    assertThat(ShimFuseTest.digests(target)).isEqualTo(ShimFuseTest.digests(src));
    assertThat(relay.stats().events()).as("reads of a complete blob raise no events").isEqualTo(events);
  }

  @Test
  void blobFilledByTheDaemonWithoutEvents_isUnmarkedAtTheNextEvent() throws Exception {
    Path src = randomTree();
    String fsid = image(src);
    String data = blobs.keySet().stream().filter(k -> !k.equals(fsid)).findFirst().orElseThrow();
    up();
    assertThat(mount(fsid)).isZero();
    assertThat(Files.readAllBytes(target.resolve("small"))).isEqualTo(Files.readAllBytes(src.resolve("small")));
    assertThat(relay.stats().unmarks()).as("partly cached: still marked").isZero();
    daemon.fillWhole(data); // what the daemon's background prefetch does: no event, no READ
    dropCaches();
    assertThat(Files.readAllBytes(target.resolve("big"))).isEqualTo(Files.readAllBytes(src.resolve("big")));
    assertThat(relay.stats().unmarks()).as("complete: unmarked at the first event after").isEqualTo(1);
    long events = relay.stats().events();
    dropCaches();
    assertThat(ShimFuseTest.digests(target)).isEqualTo(ShimFuseTest.digests(src));
    assertThat(relay.stats().events()).as("no events once unmarked").isEqualTo(events);
  }

  @Test
  void failedFetch_readerGetsEio_notZeros() throws Exception {
    Path src = randomTree();
    String fsid = image(src);
    up();
    assertThat(mount(fsid)).isZero();
    daemon.failReads = true;
    assertTimeoutPreemptively(Duration.ofSeconds(30), () ->
        assertThatThrownBy(() -> Files.readAllBytes(target.resolve("big")))
            .isInstanceOf(IOException.class).hasMessageContaining("Input/output error"));
    assertThat(relay.stats().denied()).isPositive();
    daemon.failReads = false;
    assertThat(Files.readAllBytes(target.resolve("big"))).as("a later read fetches again")
        .isEqualTo(Files.readAllBytes(src.resolve("big")));
  }

  @Test
  void daemonKilledAgainAndAgain_withAHolder_readersGetTheRightBytes() throws Exception {
    Path src = randomTree();
    for (int i = 0; i < 6; i++) {
      Files.write(src.resolve("more" + i), ShimFuseTest.random(600_000 + i * 4096, 40 + i));
    }
    String fsid = image(src);
    Map<String, String> expected = ShimFuseTest.digests(src);
    up();
    daemon.readDelayMillis = 15;
    int holder = Posix.dup(daemon.deviceFd()); // what 'lazypull holder' keeps
    try {
      assertThat(mount(fsid)).isZero();
      CompletableFuture<Map<String, String>> reader = CompletableFuture.supplyAsync(() -> {
        try {
          return ShimFuseTest.digests(target);
        } catch (Exception e) {
          throw new java.util.concurrent.CompletionException(e);
        }
      });
      int kills = 0;
      while (!reader.isDone() && kills < 20) {
        Thread.sleep(60);
        daemon.crash(); // its READs in flight are lost; the relay keeps them pending
        kills++;
        Thread.sleep(20);
        daemon = new TestBlobDaemon(ShimDevice.adopt(Posix.dup(holder)), blobs, true);
        daemon.readDelayMillis = 15;
      }
      daemon.readDelayMillis = 0;
      assertThat(reader.get(60, TimeUnit.SECONDS)).as("after %d kills", kills).isEqualTo(expected);
      assertThat(kills).isPositive();
      assertThat(relay.stats().denied()).isZero();
    } finally {
      Posix.closeQuietly(holder);
    }
  }

  /**
   * The relay gone while mounted, no successor: the holder keeps the group, and a read of data
   * not fetched waits out the grace period, then gets EIO. Without the holder's copy the kernel
   * would let it through and it would read the hole's zeros (measured, docs/fanotify.md).
   */
  @Test
  void relayGoneWhileMounted_noSuccessor_readsOfHolesGetEio_notZeros() throws Exception {
    holder.close();
    startHolder(1000);
    Path src = randomTree();
    String fsid = image(src);
    up();
    assertThat(mount(fsid)).isZero();
    assertThat(relay.activeMounts()).containsExactly(target.toString());
    assertThat(Files.readAllBytes(target.resolve("small"))).isEqualTo(Files.readAllBytes(src.resolve("small")));
    relay.close(); // a mount uses its files: it leaves the group to the holder
    relay = null;
    long guarded = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (!holder.guardsFanotifyGroup() && System.nanoTime() < guarded) {
      Thread.sleep(20);
    }
    assertThat(holder.guardsFanotifyGroup()).as("the holder guards the group").isTrue();
    assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
      assertThatThrownBy(() -> Files.readAllBytes(target.resolve("big")))
          .as("not fetched, no relay: EIO, never zeros").hasMessageContaining("Input/output error");
    });
    Mounts.umount(target, 0);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (holder.guardsFanotifyGroup() && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    assertThat(holder.guardsFanotifyGroup()).as("unmounted: the group is let go").isFalse();
  }

  /**
   * The relay stopped for a successor while mounted, and a new one started: it takes the group
   * over from the holder, and a read of data not fetched, made in between, waits and then gets
   * the right bytes.
   */
  @Test
  void relayGoneWhileMounted_successorTakesTheGroup_readersWaitAndGetTheRightBytes() throws Exception {
    Path src = randomTree();
    String fsid = image(src);
    up();
    assertThat(mount(fsid)).isZero();
    assertThat(Files.readAllBytes(target.resolve("small"))).isEqualTo(Files.readAllBytes(src.resolve("small")));
    daemon.close();
    daemon = null;
    relay.closeForSuccessor();
    relay = null;
    CompletableFuture<byte[]> reader = CompletableFuture.supplyAsync(() -> {
      try {
        return Files.readAllBytes(target.resolve("big"));
      } catch (IOException e) {
        throw new java.util.concurrent.CompletionException(e);
      }
    });
    Thread.sleep(500);
    assertThat(reader).as("waits for a relay").isNotDone();
    up(); // takes the group; its daemon writes through the fds the first relay opened before marking
    assertThat(reader.get(60, TimeUnit.SECONDS)).isEqualTo(Files.readAllBytes(src.resolve("big")));
    TreeDiff.assertSame(src, target, TreeDiff.options());
    assertThat(relay.stats().denied()).isZero();
    assertThat(relay.stats().unknown()).isZero();
  }

  @Test
  void unmount_releasesTheBlobs_theDaemonGetsClose() throws Exception {
    String fsid = image(randomTree());
    up();
    assertThat(mount(fsid)).isZero();
    Files.readAllBytes(target.resolve("small"));
    assertThat(relay.shim().cache().objects()).allMatch(o -> o.state() == ObjectState.OPEN);
    Mounts.umount(target, 0);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    List<CacheObject> objects = relay.shim().cache().objects();
    while (objects.stream().anyMatch(o -> o.state() != ObjectState.CLOSE) && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertThat(objects).hasSize(2).allMatch(o -> o.state() == ObjectState.CLOSE);
    // Mounted again: the objects are re-opened lazily by READs, as after the kernel's CLOSE.
    assertThat(mount(fsid)).isZero();
    assertThat(Files.readAllBytes(target.resolve("dir/nested/deep"))).hasSize(700_001);
  }

  @Test
  void noRelay_mountFailsWithAClearMessage() throws Exception {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream old = System.err;
    int rc;
    System.setErr(new PrintStream(err, true));
    try {
      rc = mount("ab".repeat(32));
    } finally {
      System.setErr(old);
    }
    assertThat(rc).isEqualTo(1);
    assertThat(err.toString()).contains("no fanotify relay serves").contains("lazypull shim --frontend fanotify");
  }

  @Test
  void unknownImage_mountFailsWithNotFound() throws Exception {
    up();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream old = System.err;
    int rc;
    System.setErr(new PrintStream(err, true));
    try {
      rc = mount("cd".repeat(32));
    } finally {
      System.setErr(old);
    }
    assertThat(rc).isEqualTo(1);
    assertThat(err.toString()).contains("not found").contains("cdcd");
  }

  /** What the design rests on (measured): EROFS reads metadata without events, so a sparse meta cannot mount. */
  @Test
  void kernel_sparseMetaBlob_failsTheMountWithEinval() throws Exception {
    String fsid = image(randomTree());
    Path sparse = tmp.resolve("sparse-meta");
    try (var f = new java.io.RandomAccessFile(sparse.toFile(), "rw")) {
      f.setLength(blobs.get(fsid).length);
    }
    Path data = tmp.resolve("data");
    Files.write(data, blobs.values().stream().filter(b -> b.length > blobs.get(fsid).length).findFirst().orElseThrow());
    assertThatThrownBy(() -> Mounts.mountErofs(sparse, target, List.of(data)))
        .isInstanceOfSatisfying(ErrnoException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
  }
}
