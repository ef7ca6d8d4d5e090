package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad arguments of the serving commands (holder, up, mount) are refused with one line before
 * anything is created or started. Each runs as a child process, as a user runs it: a command
 * that does not refuse would start serving, so every wait is bounded.
 */
class ServingArgumentsTest {
  @TempDir Path tmp;

  record Exit(int code, String output) {}

  /** Runs {@code lazypull args}; fails if it is still running after 60 s (it would serve). */
  static Exit lazypull(Path log, String... args) throws Exception {
    Child c = Child.lazypull("cmd", "128m", List.of(args)).logOnlyTo(log).start();
    try {
      boolean exited = c.process().waitFor(60, TimeUnit.SECONDS);
      assertThat(exited).as("'lazypull %s' still runs after 60 s instead of refusing", String.join(" ", args)).isTrue();
      c.stop(5); // joins the output pump: the log is complete
      return new Exit(c.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    } finally {
      c.kill();
    }
  }

  @Test
  void up_withABadArgument_refusesBeforeStartingAnything() throws Exception {
    Path backend = Files.createDirectories(tmp.resolve("backend"));
    Path target = Files.createDirectories(tmp.resolve("mnt"));
    String fsid = "0".repeat(64);
    String cache = tmp.resolve("cache").toString();
    String[][] cases = {
      {"2", "--fsid must be a sha256 hex digest", "--fsid", "nothex"},
      {"2", "--domain must be", "--fsid", fsid, "--domain", "a/b"},
      {"2", "unsupported backend URI scheme 'ftp'", "--fsid", fsid, "--backend", "ftp://host/x"},
      {"1", "no-backend: open: no such directory or file", "--fsid", fsid, "--backend", "file://" + tmp.resolve("no-backend")},
      {"2", "--frontend must be", "--fsid", fsid, "--frontend", "nfs"},
      {"1", "mount target " + tmp.resolve("no-target") + " is not a directory", "--fsid", fsid, "TARGET=no-target"},
    };
    for (String[] c : cases) {
      List<String> args = new java.util.ArrayList<>(List.of("up", "--cache-dir", cache));
      String where = target.toString();
      boolean hasBackend = false;
      for (int i = 2; i < c.length; i++) {
        if (c[i].startsWith("TARGET=")) {
          where = tmp.resolve(c[i].substring(7)).toString();
        } else {
          hasBackend |= c[i].equals("--backend");
          args.add(c[i]);
        }
      }
      if (!hasBackend) {
        args.addAll(List.of("--backend", "file://" + backend));
      }
      args.add(where);
      Exit e = lazypull(tmp.resolve("up.log"), args.toArray(String[]::new));
      assertThat(e.code()).as(args + ": " + e.output()).isEqualTo(Integer.parseInt(c[0]));
      assertThat(e.output()).as(String.join(" ", args)).contains(c[1]).doesNotContain("[holder]");
      assertThat(Path.of(cache)).as("created by " + args).doesNotExist();
      Files.delete(tmp.resolve("up.log"));
    }
  }

  @Test
  void upWithFanotify_onTmpfs_saysWhy_beforeStartingAnything() throws Exception {
    io.lazypull.testing.Requirements.assumeRoot();
    io.lazypull.testing.Requirements.skipUnless(io.lazypull.sys.Fanotify.probePreContent(tmp) == null,
        "needs fanotify pre-content events on " + tmp);
    Path tmpfs = Files.createDirectories(tmp.resolve("tmpfs"));
    io.lazypull.sys.Mounts.mount("tmpfs", tmpfs.toString(), "tmpfs", 0, "size=16m");
    try {
      Exit e = lazypull(tmp.resolve("up.log"), "up", "--frontend", "fanotify", "--backend",
          "file://" + Files.createDirectories(tmp.resolve("backend")), "--fsid", "0".repeat(64),
          "--cache-dir", tmpfs.resolve("cache").toString(), Files.createDirectories(tmp.resolve("mnt")).toString());
      assertThat(e.code()).as(e.output()).isEqualTo(1);
      assertThat(e.output()).contains("the filesystem of " + tmpfs + " (tmpfs) does not support fanotify"
          + " pre-content events").doesNotContain("6.14").doesNotContain("[relay]");
    } finally {
      io.lazypull.sys.Mounts.umount(tmpfs, io.lazypull.sys.Mounts.MNT_DETACH);
    }
  }

  @Test
  void mount_withABadDomain_isAUsageError() {
    java.io.StringWriter err = new java.io.StringWriter();
    picocli.CommandLine cl = Main.newCommandLine();
    cl.setErr(new java.io.PrintWriter(err));
    int code = cl.execute("mount", "--shim", tmp.toString(), "--fsid", "0".repeat(64), "--domain", "../x",
        tmp.toString());
    assertThat(code).isEqualTo(2);
    assertThat(err.toString()).contains("--domain must be");
  }

  @Test
  void holder_withASocketInAMissingDirectory_refusesAndCreatesNothing() throws Exception {
    Path missing = tmp.resolve("no/such/dir");
    Exit e = lazypull(tmp.resolve("holder.log"), "holder", "--socket", missing.resolve("h.sock").toString());
    assertThat(e.code()).isEqualTo(1);
    assertThat(e.output()).contains("lazypull holder: error: no such directory: " + missing);
    assertThat(tmp.resolve("no")).doesNotExist();
  }
}
