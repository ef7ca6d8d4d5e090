package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Reader processes for end-to-end tests: each hashes every file under a mount with
 * {@code sha256sum}, in its own order, and its result is compared with the source's. They are
 * separate processes, as a container's would be.
 */
final class Readers {
  /** Forward and reverse order: two readers that meet in the middle. */
  static final List<String> BOTH_WAYS = List.of("sort -z", "sort -zr");
  /** Forward only ({@code ./jdk} before {@code ./random}, for instance). */
  static final List<String> FORWARD = List.of("sort -z");

  private Readers() {}

  /** "sha256  ./path" lines, sorted, for every regular file under {@code dir}. */
  static String sums(Path dir) throws Exception {
    Process p = new ProcessBuilder("bash", "-c", "find . -type f -print0 | sort -z | xargs -0 sha256sum")
        .directory(dir.toFile()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertThat(p.waitFor()).isZero();
    return out;
  }

  /**
   * Starts one reader per order ({@code sort} options for the file list); each writes its sums
   * to a file in {@code outDir}, prints that file's path, and exits with sha256sum's status.
   */
  static List<Process> start(Path mnt, Path outDir, List<String> orders) throws IOException {
    List<Process> readers = new ArrayList<>();
    for (String order : orders) {
      Path out = outDir.resolve("sums-" + readers.size() + "-" + System.nanoTime());
      readers.add(new ProcessBuilder("bash", "-c", "set -o pipefail; find . -type f -print0 | " + order
          + " | xargs -0 sha256sum | sort -k2 > " + out + "; rc=$?; echo " + out + "; exit $rc")
          .directory(mnt.toFile()).redirectError(out.resolveSibling(out.getFileName() + ".err").toFile()).start());
    }
    return readers;
  }

  static boolean anyAlive(List<Process> readers) {
    return readers.stream().anyMatch(Process::isAlive);
  }

  /**
   * Every reader ended (no hang), every file it hashed has the right digest, and every file it
   * could not read failed with EIO, nothing else: right bytes or EIO. Returns how many files
   * failed with EIO (over all readers).
   */
  static int assertRightOrEio(List<Process> readers, String expectedSums) throws Exception {
    java.util.Set<String> want = new java.util.HashSet<>(expectedSums.lines().toList());
    int eio = 0;
    for (Process r : readers) {
      assertThat(r.waitFor(20, TimeUnit.MINUTES)).as("a reader hangs").isTrue();
      String out = new String(r.getInputStream().readAllBytes()).strip();
      for (String line : Files.readAllLines(Path.of(out))) {
        assertThat(want).as("a digest a reader computed").contains(line);
      }
      for (String line : Files.readAllLines(Path.of(out + ".err"))) {
        assertThat(line).as("a reader's error").matches("sha256sum: .*: Input/output error");
        eio++;
      }
    }
    return eio;
  }

  /** Every reader ended without an error and saw exactly {@code expectedSums}. */
  static void assertAllMatch(List<Process> readers, String expectedSums) throws Exception {
    List<String> want = expectedSums.lines().sorted((a, b) -> a.substring(66).compareTo(b.substring(66))).toList();
    for (Process r : readers) {
      assertThat(r.waitFor(20, TimeUnit.MINUTES)).as("a reader hangs").isTrue();
      String out = new String(r.getInputStream().readAllBytes()).strip();
      assertThat(r.exitValue()).as("a reader saw an error: %s", Files.readString(Path.of(out + ".err"))).isZero();
      assertThat(Files.readAllLines(Path.of(out))).isEqualTo(want);
    }
  }
}
