package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Fanotify;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fanotify front end end to end, as a user runs it: 'lazypull holder', 'lazypull shim
 * --frontend fanotify' (the relay), 'lazypull daemon --device shim:SOCKET' (unchanged), each in
 * its own JVM, and 'lazypull mount --frontend fanotify'; the kernel's EROFS reads the relay's
 * cache files directly, and pre-content events bring in what is missing. Images of real data,
 * compared file by file with their sources. (From S3: FanotifyFailoverTest, whose readers
 * hash the JDK from S3Proxy while the daemon is killed, then compares the whole tree.)
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FanotifyEndToEndTest {
  private static final Path JDK = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");

  @TempDir static Path tmp;
  Path blobs;
  Cluster cluster;

  @BeforeAll
  void start() throws Exception {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    blobs = Files.createDirectories(tmp.resolve("backend"));
    cluster = new Cluster(tmp.resolve("cluster"), "file://" + blobs);
    cluster.stack.frontend(Frontends.FANOTIFY);
    cluster.startHolder().startShim().startDaemon();
  }

  @AfterAll
  void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void realJdk_chunked_everyFileMatches_withReadersInParallel() throws Exception {
    MkfsResult image = Cluster.buildImage(JDK, blobs, Layout.CHUNKED);
    Path mnt = cluster.mount(image.fsid());
    List<Process> readers = new ArrayList<>();
    for (String order : List.of("sort -z", "sort -zr")) {
      readers.add(new ProcessBuilder("bash", "-c", "find . -type f -print0 | " + order + " | xargs -0 sha256sum > /dev/null")
          .directory(mnt.toFile()).redirectErrorStream(true).start());
    }
    TreeDiff.assertSame(JDK, mnt, TreeDiff.options());
    for (Process p : readers) {
      assertThat(p.waitFor(300, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as(new String(p.getInputStream().readAllBytes())).isZero();
    }
    assertThat(relayLog()).contains("for pre-content events").doesNotContain("not one of this relay's cache files");
  }

  @Test
  void tarIndexLayout_theUnmodifiedGnuTarIsTheDataBlob() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("tarsrc")), false);
    Path tar = TestTrees.gnuTar(src, tmp.resolve("layer.tar"));
    MkfsResult image = Cluster.buildImage(tar, blobs, Layout.TAR_INDEX);
    assertThat(Files.mismatch(image.dataBlob().orElseThrow().path(), tar)).isEqualTo(-1);
    Path mnt = cluster.mount(image.fsid());
    // GNU tar does not archive sockets ("socket ignored").
    TreeDiff.assertSame(src, mnt, TreeDiff.options().root(false).ignore(p -> p.equals("dev/sock")));
  }

  @Test
  void generatedTree_everyTypeAndAttributeMatches() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("gen")), false);
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path mnt = cluster.mount(image.fsid());
    TreeDiff.assertSame(src, mnt, TreeDiff.options());
  }

  @Test
  void sigtermToTheRelay_whileMounted_isRefused_andReadsGoOn() throws Exception {
    Path src = Files.createDirectories(tmp.resolve("term"));
    byte[] data = new byte[2_000_000];
    new java.util.Random(3).nextBytes(data);
    Files.write(src.resolve("data"), data);
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path mnt = cluster.mount(image.fsid());
    io.lazypull.sys.Posix.kill((int) cluster.stack.shim.pid(), 15);
    for (int i = 0; i < 300 && !relayLog().contains("not stopping"); i++) {
      Thread.sleep(100); // the relay logs its refusal when the signal reaches it
    }
    assertThat(relayLog()).contains("not stopping").contains(mnt.toString());
    assertThat(cluster.stack.shim.isAlive()).as("the relay keeps serving its mounts").isTrue();
    assertThat(Files.readAllBytes(mnt.resolve("data"))).isEqualTo(Files.readAllBytes(src.resolve("data")));
  }

  /**
   * 'lazypull up --frontend auto' on this host (no /dev/cachefiles, fanotify works): it says
   * what it chose and why, serves the image, and SIGTERM unmounts it and stops everything.
   */
  @Test
  void up_auto_choosesFanotify_saysWhy_andStopsCleanly() throws Exception {
    Path src = TestTrees.generate(Files.createDirectories(tmp.resolve("upsrc")), false);
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path target = Files.createDirectories(tmp.resolve("up-target"));
    Child up = Child.lazypull("up", "256m", List.of("up", "--frontend", "auto", "--backend", "file://" + blobs,
        "--fsid", image.fsid(), "--cache-dir", tmp.resolve("up").toString(), target.toString()))
        .logTo(tmp.resolve("up.log")).start();
    try {
      Stack.await("the mount", () -> {
        try {
          return Mounts.isMountPoint(target);
        } catch (java.io.IOException e) {
          return false;
        }
      }, up);
      String log = Files.readString(tmp.resolve("up.log"));
      assertThat(log).contains("front end: fanotify (no cachefiles on-demand: /dev/cachefiles missing");
      assertThat(Mounts.mountInfo(target).source()).startsWith(tmp.resolve("up").toAbsolutePath() + "/blobs/");
      TreeDiff.assertSame(src, target, TreeDiff.options());
      io.lazypull.sys.Posix.kill((int) up.pid(), 15);
      assertThat(up.process().waitFor(60, TimeUnit.SECONDS)).isTrue();
      assertThat(Mounts.isMountPoint(target)).isFalse();
      assertThat(Files.readString(tmp.resolve("up.log"))).contains("relay stopped");
    } finally {
      if (up.isAlive()) {
        up.process().descendants().forEach(ProcessHandle::destroyForcibly);
      }
      up.kill();
      Mounts.unmountOrDetach(target);
    }
  }

  private String relayLog() throws Exception {
    return Files.readString(cluster.stack.logFile("relay"));
  }
}
