package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** 'lazypull snapshotter' as processes, without containerd: one snapshotter per --root. */
class SnapshotterCommandTest {
  Path dir;

  @BeforeEach
  void setUp() throws Exception {
    Requirements.assumeFuse();
    // short: the stack's unix sockets live under the root (at most 107 bytes)
    dir = Files.createTempDirectory(Path.of("/var/tmp"), "lp-snapcmd-");
  }

  @AfterEach
  void tearDown() {
    if (dir != null) {
      TestTrees.deleteQuietly(dir);
    }
  }

  static Child snapshotter(String name, Path log, String... args) throws Exception {
    List<String> all = new java.util.ArrayList<>(List.of("snapshotter"));
    all.addAll(List.of(args));
    return Child.lazypull(name, "256m", all).logOnlyTo(log).start();
  }

  /** Waits (at most 120 s) for a process that must exit; its exit code. */
  static int exitOf(Child c) throws Exception {
    boolean exited = c.process().waitFor(120, TimeUnit.SECONDS);
    if (!exited) {
      c.kill();
    }
    assertThat(exited).as(c.name() + " exits").isTrue();
    return c.exitValue();
  }

  @Test
  void aSecondSnapshotterOnTheSameRoot_isRefusedNamingTheFirst_andTheFirstKeepsServing() throws Exception {
    Path root = dir.resolve("root");
    Path socket1 = dir.resolve("a.sock");
    Path socket2 = dir.resolve("b.sock");
    int stopped;
    Child first = snapshotter("snapshotter-1", dir.resolve("1.log"), "--address", socket1.toString(), "--root",
        root.toString(), "--frontend", "fuse");
    try {
      Stack.await("the first snapshotter's socket", () -> Files.exists(socket1), first);
      Object socketBefore = Files.readAttributes(socket1, BasicFileAttributes.class).fileKey();
      String holder = Files.readString(root.resolve("stack/run/holder.pid")).strip();

      Child second = snapshotter("snapshotter-2", dir.resolve("2.log"), "--address", socket2.toString(), "--root",
          root.toString(), "--frontend", "fuse");
      assertThat(exitOf(second)).isEqualTo(1);
      assertThat(Files.readString(dir.resolve("2.log"))).contains("lazypull snapshotter: error: another 'lazypull "
          + "snapshotter' (pid " + first.pid() + ") is running on " + root + ": stop it first, or give this one another --root");
      assertThat(socket2).as("the second served nothing").doesNotExist();

      // --stop while it serves is refused too: it would take the stack from under it
      Child stop = snapshotter("snapshotter-stop", dir.resolve("3.log"), "--stop", "--root", root.toString());
      assertThat(exitOf(stop)).isEqualTo(1);
      assertThat(Files.readString(dir.resolve("3.log"))).contains("another 'lazypull snapshotter' (pid " + first.pid()
          + ") is running on " + root + ": stop it first");

      assertThat(first.isAlive()).isTrue();
      assertThat(Files.readAttributes(socket1, BasicFileAttributes.class).fileKey()).as("the first's socket")
          .isEqualTo(socketBefore);
      assertThat(Files.readString(root.resolve("stack/run/holder.pid")).strip()).as("the stack's holder").isEqualTo(holder);
      assertThat(Stack.isFuseMounted(root.resolve("stack/shim"))).as("the first stack's shim is still mounted").isTrue();
    } finally {
      first.stop(15);
      // Once the first has exited, the root is free: --stop takes the stack down.
      stopped = exitOf(snapshotter("snapshotter-stop", dir.resolve("4.log"), "--stop", "--root", root.toString()));
    }
    assertThat(stopped).as(Files.readString(dir.resolve("4.log"))).isZero();
  }
}
