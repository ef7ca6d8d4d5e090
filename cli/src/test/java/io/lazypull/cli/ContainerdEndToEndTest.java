package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.backend.loopback.RegistryServer;
import io.lazypull.backend.loopback.S3ProxyServer;
import io.lazypull.containerd.ContainerdClient;
import io.lazypull.containerd.loopback.ContainerdServer;
import io.lazypull.containerd.api.types.Mount;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The snapshotter end to end, with real parts only: Debian's containerd 1.6 and runc started
 * here (own config, root, state and socket), docker-registry and S3Proxy on 127.0.0.1,
 * 'lazypull convert', 'lazypull snapshotter' and 'lazypull pull' as processes, 'ctr run'.
 *
 * <p>The image: {@link RunnableImage} ({@link TestImage}'s Debian-ish layers with whiteouts,
 * an opaque directory, xattrs and owners, and one of only a whiteout; busybox; this JDK). Its source is pushed to the
 * registry with skopeo, converted registry to registry and layout to S3Proxy. Two
 * snapshotters ("lazypull" for the registry, "lazypull-s3" for S3), each with its own stack,
 * so that the S3 run really reads from S3 (layers are shared by chain ID otherwise).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ContainerdEndToEndTest {
  static final Duration CTR = Duration.ofMinutes(3);
  static final String SECRET = "containerd-test-secret";
  static Path dir;
  static Path snapDir;
  static TestImage image;
  static RegistryServer registry;
  static S3ProxyServer s3;
  static ContainerdServer containerd;
  static Snapshotter registrySnapshotter;
  static Snapshotter s3Snapshotter;
  static String converted;
  static String s3Uri;

  /** A 'lazypull snapshotter' process and where it lives. */
  static final class Snapshotter {
    final Path root;
    final Path socket;
    Child child;

    Snapshotter(Path root) {
      this.root = root;
      this.socket = root.resolveSibling(root.getFileName() + ".sock");
    }

    Snapshotter start() throws Exception {
      Files.deleteIfExists(socket);
      child = Child.lazypull("snapshotter", "256m", List.of("snapshotter", "--address", socket.toString(),
          "--root", root.toString()))
          .env(Map.of("AWS_ACCESS_KEY_ID", "containerd-test", "AWS_SECRET_ACCESS_KEY", SECRET))
          .logTo(root.resolveSibling(root.getFileName() + ".log")).start();
      Stack.await("the snapshotter", () -> Files.exists(socket), child);
      return this;
    }

    /** The stack process NAME's pid (its pid file), or -1. */
    long pid(String name) throws IOException {
      Path f = root.resolve("stack/run/" + name + ".pid");
      return Files.exists(f) ? Long.parseLong(Files.readString(f).strip()) : -1;
    }

    void stopAll() throws Exception {
      if (child != null) {
        child.stop(15);
      }
      Child stop = Child.lazypull("snapshotter-stop", "128m", List.of("snapshotter", "--stop", "--root", root.toString())).start();
      stop.process().waitFor(120, java.util.concurrent.TimeUnit.SECONDS);
    }
  }

  @BeforeAll
  static void setUp() throws Exception {
    Requirements.assumeRoot();
    for (String c : List.of("containerd", "ctr", "runc", "docker-registry", "skopeo", "busybox")) {
      Requirements.assumeCommand(c);
    }
    ServerLogs.quiet();
    dir = TestTrees.newDir("containerd-");
    image = RunnableImage.build(dir, true);
    registry = RegistryServer.open(Files.createDirectories(dir.resolve("registry")));
    ConvertCommandTest.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "oci:" + image.layout + ":v1",
        "docker://" + registry.hostPort() + "/src/app:v1");
    s3 = S3ProxyServer.start(Files.createDirectories(dir.resolve("s3")), "containerd-test", SECRET);
    s3.createBucket("images");
    s3Uri = s3.uri("images/conv");
    System.setProperty("aws.accessKeyId", "containerd-test");
    System.setProperty("aws.secretAccessKey", SECRET);
    converted = registry.uri("conv/app:v1");
    ConvertCommandTest.Run r = ConvertCommandTest.convert(Files.createDirectories(dir.resolve("work")),
        registry.uri("src/app:v1"), converted);
    assertThat(r.code()).as(r.out() + r.err()).isZero();
    r = ConvertCommandTest.convert(Files.createDirectories(dir.resolve("work-s3")), "oci:" + image.layout + ":v1", s3Uri,
        "--tag", "conv/app:v1");
    assertThat(r.code()).as(r.out() + r.err()).isZero();

    // short paths: the stacks' unix sockets live under the roots (at most 107 bytes)
    snapDir = Files.createTempDirectory(Path.of("/var/tmp"), "lp-snap-");
    registrySnapshotter = new Snapshotter(snapDir.resolve("reg")).start();
    s3Snapshotter = new Snapshotter(snapDir.resolve("s3")).start();
    containerd = ContainerdServer.start(snapDir.resolve("c"),
        Map.of("lazypull", registrySnapshotter.socket, "lazypull-s3", s3Snapshotter.socket));
  }

  @AfterAll
  static void tearDown() throws Exception {
    System.clearProperty("aws.accessKeyId");
    System.clearProperty("aws.secretAccessKey");
    if (containerd != null) {
      containerd.close();
    }
    for (Snapshotter s : new Snapshotter[] {registrySnapshotter, s3Snapshotter}) {
      if (s != null) {
        s.stopAll();
      }
    }
    if (registry != null) {
      registry.close();
    }
    if (s3 != null) {
      s3.close();
    }
    if (snapDir != null) {
      TestTrees.deleteQuietly(snapDir);
    }
  }

  /** 'lazypull pull ARGS' as a process; returns its output. */
  static String pull(String... args) throws Exception {
    List<String> all = new ArrayList<>(List.of("pull", "--address", containerd.socket().toString()));
    all.addAll(List.of(args));
    Path log = Files.createTempFile(dir, "pull-", ".log");
    Child p = Child.lazypull("pull", "256m", all)
        .env(Map.of("AWS_ACCESS_KEY_ID", "containerd-test", "AWS_SECRET_ACCESS_KEY", SECRET)).logOnlyTo(log).start();
    assertThat(p.process().waitFor(300, java.util.concurrent.TimeUnit.SECONDS)).as("lazypull pull finished").isTrue();
    String out = Files.readString(log);
    assertThat(p.exitValue()).as(out).isZero();
    return out;
  }

  static String ctrOk(String... args) throws Exception {
    ContainerdServer.Result r = containerd.ctr(CTR, args);
    assertThat(r.code()).as("ctr " + String.join(" ", args) + ": " + r.out()).isZero();
    return r.out();
  }

  /**
   * A ctr command right after the snapshotter restarted: containerd's connection to it backs
   * off up to 3 s between dials (its proxy's gRPC settings), so the first calls may fail with
   * UNAVAILABLE; bounded at 60 s.
   */
  static String afterRestart(String... args) throws Exception {
    for (int i = 0; ; i++) {
      ContainerdServer.Result r = containerd.ctr(CTR, args);
      if (r.code() == 0 || i >= 120 || !r.out().contains("navailable")) {
        assertThat(r.code()).as("ctr " + String.join(" ", args) + ": " + r.out()).isZero();
        return r.out();
      }
      Thread.sleep(500);
    }
  }

  /** A container id no earlier run left behind (runc keeps its state under /run, shared). */
  static String id(String name) {
    return name + "-" + Long.toHexString(System.nanoTime());
  }

  static String name(String uri) {
    return uri.replaceFirst("^oci\\+http://", "");
  }

  /** The pid of a daemon that serves (its ready file names it); waits for one, at most 60 s. */
  static long awaitServingDaemon(AtomicBoolean done) throws Exception {
    Path run = registrySnapshotter.root.resolve("stack/run");
    for (int i = 0; i < 600 && !done.get(); i++) {
      long pid = registrySnapshotter.pid("daemon");
      try (Stream<Path> s = Files.list(run)) {
        for (Path f : (Iterable<Path>) s.filter(p -> p.getFileName().toString().startsWith("daemon.ready."))::iterator) {
          try {
            if (Files.readString(f).strip().equals(Long.toString(pid))) {
              return pid;
            }
          } catch (IOException e) {
            // replaced meanwhile
          }
        }
      }
      Thread.sleep(100);
    }
    return -1;
  }

  /** Prepares KEY on PARENT in SNAPSHOTTER through containerd and mounts it: a container's view. */
  static Path mountRootfs(ContainerdClient c, String snapshotter, String key, String parent) throws Exception {
    List<Mount> mounts = c.prepare(snapshotter, key, parent, Map.of()).mounts();
    assertThat(mounts).hasSize(1);
    Mount m = mounts.get(0);
    assertThat(m.getType()).isEqualTo("overlay");
    Path target = Files.createDirectories(dir.resolve("rootfs-" + snapshotter));
    Mounts.mount("overlay", target.toString(), "overlay", 0, String.join(",", m.getOptionsList()));
    return target;
  }

  @Test
  @Order(4)
  void s3Image_runs() throws Exception {
    String out = pull("--snapshotter", "lazypull-s3", "--namespace", "s3", "--tag", "conv/app:v1", "--name", "s3/app:v1", s3Uri);
    assertThat(out).contains(image.diffIds.size() + " layers (" + image.diffIds.size() + " mounted now, 0 there already)");
    String run = ctrOk("-n", "s3", "run", "--rm", "--snapshotter", "lazypull-s3", "s3/app:v1", id("c-s3"),
        "/bin/busybox", "cat", "/usr/share/doc/tar/NEWS.layer2", "/opt/tagged");
    assertThat(run).isEqualTo("tar's docs replaced in layer 2\nwith an xattr\n");
  }

  @Test
  @Order(1)
  void pulledFromTheRegistry_aContainerRuns_andReadingAFewFilesFetchesASmallFraction() throws Exception {
    // The registry snapshotter's stack: bytes fetched (its cache files: the pull's meta blobs
    // and what the container reads), against the image's data.
    Stack view = new Stack(registrySnapshotter.root.resolve("stack"), null);
    long before = view.cachedBytes();
    String out = pull(converted);
    assertThat(out).contains(image.diffIds.size() + " layers (" + image.diffIds.size() + " mounted now, 0 there already)");
    String release = Files.readString(Path.of(RunnableImage.JDK, "release"));
    String run = ctrOk("run", "--rm", "--snapshotter", "lazypull", name(converted), id("c-few"),
        "/bin/busybox", "cat", "/etc/motd", RunnableImage.JDK + "/release");
    assertThat(run).isEqualTo("layer 3\n" + release);
    long fetched = view.cachedBytes() - before;
    long total = 0;
    for (Path tar : image.tars) {
      total += Files.size(tar);
    }
    double fraction = (double) fetched / total;
    System.out.printf("containerd: pull + a container reading two files of a %.1f MiB image fetched %.1f MiB (%.2f%%)%n",
        total / 1048576.0, fetched / 1048576.0, 100 * fraction);
    assertThat(fraction).as("fetched / image data").isLessThan(0.10);
  }

  @Test
  @Order(2)
  void theDaemonKilledAgainAndAgainDuringAContainersStart_goesUnnoticed() throws Exception {
    // Kill loop: the daemon SIGKILLed again and again while a container starts and hashes
    // every file of the JDK, read cold from the registry; the snapshotter restarts it.
    Map<String, String> expected = new TreeMap<>();
    try (Stream<Path> s = Files.walk(Path.of(RunnableImage.JDK))) {
      for (Path f : (Iterable<Path>) s.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS))::iterator) {
        expected.put(f.toString(), io.lazypull.backend.Digests.sha256Hex(f));
      }
    }
    AtomicBoolean done = new AtomicBoolean();
    AtomicInteger kills = new AtomicInteger();
    Thread killer = new Thread(() -> {
      Random rnd = new Random(7);
      try {
        for (int i = 0; i < 12 && !done.get(); i++) {
          // the first daemon dies as the container starts; each next one once it has served
          // for 0.2-0.7 s (killed sooner, no daemon would ever get anything done)
          long pid = i == 0 ? registrySnapshotter.pid("daemon") : awaitServingDaemon(done);
          Thread.sleep(i == 0 ? 100 : 200 + rnd.nextInt(500));
          if (pid > 0 && !done.get() && io.lazypull.sys.Posix.kill((int) pid, 9)) {
            kills.incrementAndGet();
          }
        }
      } catch (Exception e) {
        // the test's assertions say what went wrong
      }
    }, "daemon-killer");
    killer.start();
    String hashes;
    try {
      hashes = ctrOk("run", "--rm", "--snapshotter", "lazypull", name(converted), id("c-kill"), "/bin/busybox", "sh", "-c",
          "/bin/busybox find " + RunnableImage.JDK + " -type f -exec /bin/busybox sha256sum {} +");
    } finally {
      done.set(true);
      killer.join(10_000);
    }
    Map<String, String> actual = new TreeMap<>();
    for (String line : hashes.split("\n")) {
      String[] p = line.split("\\s+", 2);
      actual.put(p[1], p[0]);
    }
    System.out.printf("containerd: %d files hashed in a container while the daemon was SIGKILLed %d times%n",
        actual.size(), kills.get());
    assertThat(actual).isEqualTo(expected);
    assertThat(kills.get()).as("daemon kills during the container's run").isGreaterThanOrEqualTo(3);
  }

  @Test
  @Order(3)
  void everyFileEqualsTheSourceUnpackedByContainerdsOverlayfs() throws Exception {
    // The same source image, pulled and unpacked by containerd's own overlayfs snapshotter.
    ctrOk("images", "pull", "--plain-http", name(registry.uri("src/app:v1")));
    String top = PullCommand.chainIds(image.diffIds).get(image.diffIds.size() - 1);
    try (ContainerdClient c = ContainerdClient.connect(containerd.socket(), "default", CTR)) {
      c.withLease("cmp-" + Long.toHexString(System.nanoTime()), Duration.ofHours(1)); // else the GC may take them
      Path expected = mountRootfs(c, "overlayfs", "cmp-overlayfs", top);
      Path actual = mountRootfs(c, "lazypull", "cmp-lazypull", top);
      try {
        // the root directory is each snapshot's own new upper directory
        TreeDiff.assertSame(expected, actual, TreeDiff.options().root(false));
        assertThat(actual.resolve("usr/share/doc/gzip")).doesNotExist(); // whiteout of a directory
        assertThat(actual.resolve("usr/share/common-licenses/GPL-2")).doesNotExist();
        try (Stream<Path> s = Files.list(actual.resolve("usr/share/doc/tar"))) { // opaque in layer 2
          assertThat(s.map(p -> p.getFileName().toString()).toList()).containsExactly("NEWS.layer2");
        }
      } finally {
        Mounts.unmountOrDetach(expected);
        Mounts.unmountOrDetach(actual);
        c.remove("overlayfs", "cmp-overlayfs");
        c.remove("lazypull", "cmp-lazypull");
        c.dropLease();
      }
    }
  }

  @Test
  @Order(5)
  void snapshotterKilledAndRestarted_keepsSnapshotsAndMounts() throws Exception {
    Snapshotter s = registrySnapshotter;
    String before = ctrOk("snapshots", "--snapshotter", "lazypull", "ls");
    long holder = s.pid("holder");
    Path motd = null;
    try (Stream<Path> layers = Files.list(s.root.resolve("layers"))) {
      for (Path l : (Iterable<Path>) layers::iterator) {
        Path f = l.resolve("etc/motd"); // a regular file: in layer 2 it is a whiteout (c 0:0)
        if (Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS) && Files.readString(f).equals("layer 3\n")) {
          motd = l.resolve("etc/motd");
        }
      }
    }
    assertThat(motd).as("a mounted layer with etc/motd").isNotNull();

    // SIGKILL at random points of a stream of Prepare/Commit calls; after each restart every
    // snapshot containerd recorded is known to the snapshotter.
    Random rnd = new Random(3);
    for (int round = 0; round < 4; round++) {
      AtomicBoolean stop = new AtomicBoolean();
      int r = round;
      Thread calls = new Thread(() -> {
        for (int i = 0; i < 200 && !stop.get(); i++) {
          try {
            containerd.ctr(CTR, "snapshots", "--snapshotter", "lazypull", "prepare", "k" + r + "-" + i, "");
            containerd.ctr(CTR, "snapshots", "--snapshotter", "lazypull", "commit", "c" + r + "-" + i, "k" + r + "-" + i);
          } catch (Exception e) {
            return;
          }
        }
      }, "snapshot-calls");
      calls.start();
      Thread.sleep(500 + rnd.nextInt(1500));
      s.child.kill();
      stop.set(true);
      calls.join(60_000);
      assertThat(Files.readString(motd)).as("a layer mount while the snapshotter is dead").isEqualTo("layer 3\n");
      s.start();
      for (String line : afterRestart("snapshots", "--snapshotter", "lazypull", "ls").split("\n")) {
        String key = line.split("\\s+")[0];
        if (key.equals("KEY") || key.isBlank()) {
          continue;
        }
        ctrOk("snapshots", "--snapshotter", "lazypull", "usage", key); // the snapshotter knows it
      }
    }
    assertThat(s.pid("holder")).as("the stack was taken over, not started again").isEqualTo(holder);
    String after = ctrOk("snapshots", "--snapshotter", "lazypull", "ls");
    for (String line : before.split("\n")) {
      assertThat(after).contains(line.strip());
    }
    String run = ctrOk("run", "--rm", "--snapshotter", "lazypull", name(converted), id("c-after"), "/bin/busybox", "cat", "/etc/motd");
    assertThat(run).isEqualTo("layer 3\n");
  }

  /**
   * What plain 'ctr images pull --snapshotter lazypull' does with a converted image on
   * containerd 1.6 (docs/containers.md): it fetches the content, then unpacks each layer blob
   * through the diff service, which refuses a lazypull meta blob; the image is not runnable.
   */
  @Test
  @Order(6)
  void plainCtrPull_cannotUnpackALazypullImage() throws Exception {
    ContainerdServer.Result r = containerd.ctr(CTR, "-n", "ctrpull", "images", "pull", "--plain-http", "--snapshotter",
        "lazypull", name(converted));
    System.out.println("containerd: ctr images pull --snapshotter lazypull: exit " + r.code() + ": "
        + r.out().lines().filter(l -> l.startsWith("ctr:")).findFirst().orElse(""));
    assertThat(r.code()).as(r.out()).isNotZero();
    assertThat(containerd.ctr(CTR, "-n", "ctrpull", "run", "--rm", "--snapshotter", "lazypull", name(converted), id("c-ctrpull"),
        "/bin/busybox", "true").code()).isNotZero();
  }
}
