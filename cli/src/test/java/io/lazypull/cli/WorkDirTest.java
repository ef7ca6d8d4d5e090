package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.testing.Requirements;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code demo}, {@code bench read} and {@code bench failover} run as root and build images,
 * mount and run programs in their work directory. Another user (here {@code nobody}) who makes
 * that directory first in a world-writable one, or makes it again between a wipe and a mkdir,
 * must get nothing of it: the command refuses the directory (one line, exit 1) and writes
 * nothing through it. Their fixed defaults were such directories ({@code /var/tmp/lazypull-*}).
 *
 * <pre>
 *   tmp/            root 0755
 *     shared/       root 1777, as /var/tmp is
 *     victim/       root 0700, where the symlinks nobody plants point
 * </pre>
 */
class WorkDirTest {
  @TempDir Path tmp;
  Path shared;
  Path victim;

  @BeforeEach
  void setUp() throws Exception {
    Requirements.assumeRoot();
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x"));
    shared = Files.createDirectory(tmp.resolve("shared"));
    io.lazypull.sys.Posix.chmod(shared.toString(), 01777);
    victim = Files.createDirectory(tmp.resolve("victim"));
  }

  private static List<String> command(String name, Path workDir, Path tree) {
    List<String> args = switch (name) {
      case "demo" -> List.of("demo");
      // Every default row, one workload (the three took 3 minutes of CI): the rows share the
      // work dir this tests, and this is also the run that shows every row still works.
      case "bench read" -> List.of("bench", "read", "--tree", tree.toString(), "--runs", "1", "--workloads", "all");
      case "bench failover" -> List.of("bench", "failover", "--size-mib", "4", "--kills", "1",
          "--interval-ms", "300", "--readers", "1");
      default -> throw new IllegalArgumentException(name);
    };
    List<String> all = new ArrayList<>(args);
    if (workDir != null) {
      all.addAll(List.of("--work-dir", workDir.toString()));
    }
    return all;
  }

  private Path smallTree() throws Exception {
    Path tree = Files.createDirectories(tmp.resolve("tree/sub"));
    Files.write(tree.resolve("a"), new byte[300_000]);
    return tree.getParent();
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"demo", "bench read", "bench failover"})
  void aWorkDirAnotherUserMadeFirst_isRefused_andNothingIsWrittenThroughIt(String name) throws Exception {
    Requirements.assumeFuse();
    Path work = shared.resolve("lazypull-work");
    Path planted = work.resolve("planted");
    asNobody("mkdir -m 777 '" + work + "' && ln -s '" + victim + "' '" + work + "/backend' && echo mine > '"
        + planted + "'");
    assertThat(Files.getOwner(work).getName()).isEqualTo("nobody");
    // And made again, with its symlink, as fast as it goes whenever it is gone.
    // setpriv execs perl itself (runuser would fork): destroying the process ends the loop.
    Process racer = new ProcessBuilder("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "perl",
        "-e", "my ($d, $v) = @ARGV; my $end = time + 600;"
            + " while (time < $end) { if (mkdir $d) { chmod 0777, $d; symlink $v, \"$d/backend\" } }",
        work.toString(), victim.toString()).redirectErrorStream(true).start();
    BackendCommandsTest.Run r;
    try {
      r = BackendCommandsTest.run(command(name, work, smallTree()).toArray(String[]::new));
    } finally {
      racer.destroyForcibly();
      assertThat(racer.waitFor(30, TimeUnit.SECONDS)).isTrue();
    }

    try (Stream<Path> s = Files.list(victim)) {
      assertThat(s.toList()).as("written through nobody's symlink").isEmpty();
    }
    assertThat(r.code()).as(r.text() + r.err()).isEqualTo(1);
    assertThat(r.err().strip()).doesNotContain("\n").contains(work.toString()).contains("nobody");
    assertThat(Files.getOwner(work, LinkOption.NOFOLLOW_LINKS).getName()).isEqualTo("nobody");
    assertThat(Files.readString(planted)).isEqualTo("mine\n");
  }

  @Test
  void demo_refusesAWorkDirBehindAnotherUsersSymlink() throws Exception {
    Requirements.assumeFuse();
    Path real = Files.createDirectory(tmp.resolve("real"));
    Path link = shared.resolve("link");
    asNobody("ln -s '" + real + "' '" + link + "'");

    BackendCommandsTest.Run r = BackendCommandsTest.run("demo", "--work-dir", link.resolve("demo").toString());

    assertThat(r.code()).as(r.text() + r.err()).isEqualTo(1);
    assertThat(r.err().strip()).doesNotContain("\n").contains(link.toString()).contains("nobody");
    assertThat(real.resolve("demo")).doesNotExist();
  }

  /** In a directory anyone can write and that is not sticky, anyone can rename ours away. */
  @Test
  void demo_refusesAWorkDirInADirectoryOthersCanWrite_notSticky() throws Exception {
    Requirements.assumeFuse();
    Path open = Files.createDirectory(tmp.resolve("open"));
    Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));

    BackendCommandsTest.Run r = BackendCommandsTest.run("demo", "--work-dir", open.resolve("a/demo").toString());

    assertThat(r.code()).as(r.text() + r.err()).isEqualTo(1);
    assertThat(r.err().strip()).doesNotContain("\n").contains(open + " on the way to it").contains("mode 0777");
    assertThat(open.resolve("a")).doesNotExist();
  }

  /** A work directory of ours that an earlier run left (mode 0755, as old versions made it). */
  @Test
  void demo_wipesItsOwnWorkDir_andMakesItPrivate() throws Exception {
    Requirements.assumeFuse();
    Path work = Files.createDirectory(shared.resolve("lazypull-demo"));
    Files.setPosixFilePermissions(work, PosixFilePermissions.fromString("rwxr-xr-x"));
    Files.writeString(work.resolve("stale"), "from an earlier run");

    BackendCommandsTest.Run r = BackendCommandsTest.run("demo", "--work-dir", work.toString());

    assertThat(r.code()).as(r.text() + r.err()).isZero();
    assertThat(r.text()).contains("2. a local backend: file://" + work.resolve("backend"))
        .contains("(logs in " + work.resolve("serve/logs") + ")")
        .contains("mounted on " + work.resolve("mnt"))
        .contains("| openjdk version");
    assertThat(work.resolve("stale")).doesNotExist();
    assertThat(Files.getOwner(work, LinkOption.NOFOLLOW_LINKS).getName()).isEqualTo("root");
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(work, LinkOption.NOFOLLOW_LINKS)))
        .isEqualTo("rwx------");
  }

  /**
   * Without --work-dir: no fixed path in /var/tmp is used, so nobody's is left alone. (bench
   * read, not failover: failover's class-data archive cannot be made on the test class path,
   * which has directories.)
   */
  @Test
  void benchRead_byDefault_leavesTheOldFixedPathAlone_andLeavesNothingBehind() throws Exception {
    Requirements.assumeFuse();
    Requirements.assumeCommand("bindfs");
    Path old = Path.of("/var/tmp/lazypull-bench-read");
    Path aside = null;
    if (Files.exists(old, LinkOption.NOFOLLOW_LINKS)) { // an earlier run's, given back after
      aside = Files.move(old, old.resolveSibling(old.getFileName() + ".WorkDirTest-" + ProcessHandle.current().pid()));
    }
    try (Stream<Path> before = Files.list(old.getParent())) {
      List<Path> existing = before.filter(WorkDirTest::benchReadDir).toList();
      asNobody("mkdir -m 777 '" + old + "' && ln -s '" + victim + "' '" + old + "/backend' && echo mine > '" + old
          + "/planted'");

      List<String> benchRead = command("bench read", null, smallTree());
      BackendCommandsTest.Run r = BackendCommandsTest.run(benchRead.toArray(String[]::new));

      assertThat(r.code()).as(r.text() + r.err()).isZero();
      assertThat(r.text()).contains("| shim (FUSE), warm ", "| shim, cold, file://, --prefetch list ",
          "| shim, warm stack, cold image ");
      if (io.lazypull.sys.Fanotify.probePreContent(tmp) == null) { // the bench leaves out what the kernel lacks
        assertThat(r.text()).contains("| fanotify, cold, file:// ", "| fanotify, warm (blob complete, unmarked) ");
      }
      assertThat(Files.readString(old.resolve("planted"))).isEqualTo("mine\n");
      assertThat(Files.getOwner(old, LinkOption.NOFOLLOW_LINKS).getName()).isEqualTo("nobody");
      try (Stream<Path> s = Files.list(victim)) {
        assertThat(s.toList()).isEmpty();
      }
      try (Stream<Path> after = Files.list(old.getParent())) {
        assertThat(after.filter(p -> benchReadDir(p) && !p.equals(old)).toList()).as("left in /var/tmp")
            .containsExactlyInAnyOrderElementsOf(existing);
      }
    } finally {
      new ProcessBuilder("rm", "-rf", "--one-file-system", old.toString()).start().waitFor(60, TimeUnit.SECONDS);
      if (aside != null) {
        Files.move(aside, old);
      }
    }
  }

  private static boolean benchReadDir(Path p) {
    return p.getFileName().toString().startsWith("lazypull-bench-read");
  }

  private static void asNobody(String shell) throws Exception {
    Process p = new ProcessBuilder("runuser", "-u", "nobody", "--", "sh", "-c", shell).redirectErrorStream(true)
        .start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0).as(shell + ": " + out).isTrue();
  }
}
