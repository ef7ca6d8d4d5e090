package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code lazypull shim}: usage, and the real command in a child JVM (SIGTERM, kill -9). */
class ShimCommandTest {
  @TempDir Path tmp;
  final List<Process> children = new ArrayList<>();

  @AfterEach
  void cleanUp() throws Exception {
    for (Process p : children) {
      p.destroyForcibly().waitFor();
    }
    Path mp = tmp.resolve("mnt");
    if (Mounts.isMountPoint(mp)) {
      Mounts.umount(mp, Mounts.MNT_DETACH);
    }
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      assertThat(m.mountPoint()).as("mounts left behind").doesNotStartWith(tmp.toString());
    }
  }

  @Test
  void help_explainsTheShim() {
    CommandLine cl = Main.newCommandLine();
    StringWriter out = new StringWriter();
    cl.setOut(new PrintWriter(out));
    assertThat(cl.execute("shim", "--help")).isZero();
    assertThat(out.toString()).contains("--mountpoint", "--cache-dir", "--socket", "cachefiles",
        "lazypull daemon --device shim:SOCKET", "lazypull mount --shim", "restore", "EIO");
  }

  @Test
  void missingOptions_areAUsageError() {
    CommandLine cl = Main.newCommandLine();
    cl.setErr(new PrintWriter(new StringWriter()));
    assertThat(cl.execute("shim", "--mountpoint", tmp.toString())).isEqualTo(2);
  }

  Process shim(Path log) throws IOException {
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx128m", "-cp", System.getProperty("java.class.path"),
        "-Djna.tmpdir=" + System.getProperty("jna.tmpdir", "target/jna"), Main.class.getName(), "shim",
        "--mountpoint", tmp.resolve("mnt").toString(), "--cache-dir", tmp.resolve("cache").toString(),
        "--socket", tmp.resolve("run/dev.sock").toString())
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    children.add(p);
    return p;
  }

  void awaitMounted(Process p, Path log) throws Exception {
    for (int i = 0; i < 1500; i++) {
      Mounts.MountInfo mi = Mounts.mountInfo(tmp.resolve("mnt"));
      if (mi != null && mi.fsType().startsWith("fuse") && Files.exists(tmp.resolve("run/dev.sock"))
          && Files.readString(log).contains("shim ready")) {
        return;
      }
      if (!p.isAlive()) {
        break;
      }
      Thread.sleep(10);
    }
    throw new AssertionError("the shim did not come up:\n" + Files.readString(log));
  }

  @Test
  void sigterm_unmountsCleanly_andKill9LeavesAMountTheNextShimCleansUp() throws Exception {
    Requirements.assumeFuse();
    Path log1 = tmp.resolve("shim1.log");
    Process p1 = shim(log1);
    awaitMounted(p1, log1);
    assertThat(Files.isDirectory(tmp.resolve("mnt/anydomain"))).isTrue();
    p1.destroy(); // SIGTERM
    assertThat(p1.waitFor(20, TimeUnit.SECONDS)).isTrue();
    assertThat(p1.exitValue()).as(Files.readString(log1)).isIn(0, 143);
    assertThat(Mounts.isMountPoint(tmp.resolve("mnt"))).as("unmounted").isFalse();
    assertThat(Files.exists(tmp.resolve("run/dev.sock"))).as("socket removed").isFalse();
    assertThat(Files.readString(log1)).contains("unmounted " + tmp.resolve("mnt"));

    Path log2 = tmp.resolve("shim2.log");
    Process p2 = shim(log2);
    awaitMounted(p2, log2);
    p2.destroyForcibly().waitFor(); // kill -9: a dead mount and a stale socket stay
    assertThat(Mounts.isMountPoint(tmp.resolve("mnt"))).isTrue();
    assertThat(Files.exists(tmp.resolve("run/dev.sock"))).isTrue();

    Path log3 = tmp.resolve("shim3.log");
    Process p3 = shim(log3);
    awaitMounted(p3, log3);
    String out = Files.readString(log3, StandardCharsets.UTF_8);
    assertThat(out).contains("dead FUSE mount of a killed shim (ENOTCONN): lazily unmounted it")
        .contains("removing stale socket");
    assertThat(Files.isDirectory(tmp.resolve("mnt/x"))).isTrue();
    p3.destroy();
    assertThat(p3.waitFor(20, TimeUnit.SECONDS)).isTrue();
    assertThat(Mounts.isMountPoint(tmp.resolve("mnt"))).isFalse();
  }
}
