package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The --frontend options of shim, mount and up: names, combinations, help. No root needed. */
class FrontendOptionsTest {
  @TempDir Path tmp;

  private static int run(StringWriter err, String... args) {
    CommandLine cl = Main.newCommandLine();
    cl.setErr(new PrintWriter(err));
    cl.setOut(new PrintWriter(new StringWriter()));
    return cl.execute(args);
  }

  @Test
  void shim_fanotifyWithFuseOptions_orAnUnknownFrontend_orFuseWithoutMountpoint_areUsageErrors() {
    StringWriter err = new StringWriter();
    String cache = tmp.resolve("c").toString();
    String sock = tmp.resolve("s").toString();
    assertThat(run(err, "shim", "--frontend", "fanotify", "--mountpoint", tmp.toString(), "--cache-dir", cache,
        "--socket", sock)).isEqualTo(2);
    assertThat(err.toString()).contains("--frontend fanotify mounts nothing");
    assertThat(run(err, "shim", "--frontend", "nfs", "--cache-dir", cache, "--socket", sock)).isEqualTo(2);
    assertThat(err.toString()).contains("--frontend must be fuse or fanotify");
    assertThat(run(err, "shim", "--cache-dir", cache, "--socket", sock)).isEqualTo(2);
    assertThat(err.toString()).contains("--frontend fuse needs --mountpoint");
  }

  @Test
  void mount_fanotifyWithoutCacheDir_isAnError() {
    StringWriter err = new StringWriter();
    assertThat(run(err, "mount", "--frontend", "fanotify", "--fsid", "ab".repeat(32), tmp.toString())).isEqualTo(1);
    assertThat(err.toString()).contains("--frontend fanotify needs --cache-dir");
  }

  @Test
  void daemonArg_takesOptionsOfTheDaemon_verbatim() {
    for (String cmd : new String[] {"up", "snapshotter"}) {
      CommandLine cl = Main.newCommandLine();
      java.util.List<String> argv = new java.util.ArrayList<>(java.util.List.of(cmd, "--daemon-arg=--verbose",
          "--daemon-arg", "-v", "--daemon-arg=--fetch-size=262144"));
      if (cmd.equals("up")) {
        argv.addAll(java.util.List.of("--fsid", "ab".repeat(32), tmp.toString()));
      }
      CommandLine.ParseResult r = cl.parseArgs(argv.toArray(new String[0]));
      Object command = r.subcommand().commandSpec().userObject();
      java.util.List<String> args = command instanceof UpCommand u ? u.daemonArgs : ((SnapshotterCommand) command).daemonArgs;
      assertThat(args).as(cmd).containsExactly("--verbose", "-v", "--fetch-size=262144");
    }
    StringWriter err = new StringWriter();
    assertThat(run(err, "up", "--daemon-arg")).isEqualTo(2);
    assertThat(err.toString()).contains("Missing value for option '--daemon-arg'");
  }

  @Test
  void frontendNames_andTheChoiceLine() {
    assertThat(Frontends.parse("fanotify")).isEqualTo(Frontends.FANOTIFY);
    assertThat(Frontends.parse("kernel")).isEqualTo(Frontends.KERNEL);
    assertThat(Frontends.parse("fuse")).isEqualTo(Frontends.FUSE);
    assertThatThrownBy(() -> Frontends.parse("fscache")).hasMessageContaining("kernel, fanotify, fuse or auto");
    assertThat(new Frontends.Choice(Frontends.FANOTIFY, "because").line()).isEqualTo("front end: fanotify (because)");
  }

  @Test
  void help_namesTheFrontends() {
    for (String cmd : new String[] {"shim", "mount", "up"}) {
      CommandLine cl = Main.newCommandLine();
      StringWriter out = new StringWriter();
      cl.setOut(new PrintWriter(out));
      assertThat(cl.execute(cmd, "--help")).isZero();
      assertThat(out.toString()).as(cmd).contains("--frontend").contains("fanotify");
    }
  }
}
