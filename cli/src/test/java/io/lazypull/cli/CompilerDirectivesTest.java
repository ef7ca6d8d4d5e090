package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The daemon's compiler directives (cli/jvm/daemon-compiler.json): a JVM refuses to start on a
 * file it cannot parse, so the committed file is checked against this JVM, and so is what it
 * does: C2 for the SHA-256 code, C1 (tier 1) for everything else.
 */
class CompilerDirectivesTest {
  private static final Path FILE = Path.of("jvm/daemon-compiler.json").toAbsolutePath();

  @AfterEach
  void clearProperty() {
    System.clearProperty(Child.COMPILER_DIRECTIVES);
  }

  @Test
  void theDaemonGetsTheDirectivesTheLauncherNames_otherChildrenDoNot() {
    System.setProperty(Child.COMPILER_DIRECTIVES, FILE.toString());
    assertThat(Child.memoryOptions("daemon"))
        .contains("-XX:+UnlockDiagnosticVMOptions", "-XX:CompilerDirectivesFile=" + FILE);
    assertThat(Child.memoryOptions("shim")).noneMatch(o -> o.contains("CompilerDirectives"))
        .contains("-XX:TieredStopAtLevel=1");
  }

  @Test
  void theFrontEndsCompileSooner_theDaemonAndTheHolderDoNot() {
    assertThat(Child.memoryOptions("shim")).contains(Child.FRONT_END_COMPILE_SCALING);
    assertThat(Child.memoryOptions("relay")).contains(Child.FRONT_END_COMPILE_SCALING);
    assertThat(Child.memoryOptions("daemon")).noneMatch(o -> o.contains("CompileThresholdScaling"));
    assertThat(Child.memoryOptions("holder")).noneMatch(o -> o.contains("CompileThresholdScaling"));
  }

  /** The launcher (a shell script) gives 'up' and 'shim' the flag by value: the same value. */
  @Test
  void theLauncherGivesTheSameScaling() throws Exception {
    String launcher = java.nio.file.Files.readString(Path.of("../lazypull"));
    assertThat(launcher).contains("java_opts+=(" + Child.FRONT_END_COMPILE_SCALING + ")");
  }

  @Test
  void aFileThatIsNotThere_isLeftOut_forTheJvmWouldNotStart() {
    System.setProperty(Child.COMPILER_DIRECTIVES, FILE.resolveSibling("no-such.json").toString());
    assertThat(Child.memoryOptions("daemon")).noneMatch(o -> o.contains("CompilerDirectives"));
    System.clearProperty(Child.COMPILER_DIRECTIVES);
    assertThat(Child.memoryOptions("daemon")).noneMatch(o -> o.contains("CompilerDirectives"));
  }

  @Test
  void aJvmStartsWithThem_andCompilesOnlyTheDigestCodeWithC2() throws Exception {
    System.setProperty(Child.COMPILER_DIRECTIVES, FILE.toString());
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.addAll(Child.memoryOptions("daemon"));
    cmd.addAll(List.of("-XX:+PrintCompilation", "-cp", System.getProperty("java.class.path"),
        Hashing.class.getName()));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("the JVM ended").isTrue();
    assertThat(p.exitValue()).as(out.lines().limit(20).reduce("", (a, b) -> a + "\n" + b)).isZero();
    assertThat(out).contains("compiler directives added").contains("digest ok");
    // PrintCompilation's columns: time, id, flags, tier, method. Tier 4 is C2.
    List<String> c2 = out.lines().filter(l -> l.matches("\\s*\\d+\\s+\\d+\\s+[%sbn! ]*4\\s+\\S+.*")).toList();
    assertThat(c2).as("methods C2 compiled").anyMatch(l -> l.contains("sun.security.provider."))
        .allMatch(l -> l.contains("sun.security.provider.") || l.contains("java.security.MessageDigest"));
    assertThat(out).as("other hot methods are kept from C2").contains("made not compilable on level 4");
  }

  /** Hashes enough for the digest code to reach C2, and other code to become hot too. */
  static final class Hashing {
    public static void main(String[] args) throws Exception {
      byte[] buf = new byte[1 << 20];
      new java.util.Random(1).nextBytes(buf);
      byte[] last = null;
      for (int i = 0; i < 64; i++) {
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        for (int off = 0; off < buf.length; off += 16384) {
          md.update(buf, off, 16384);
        }
        byte[] d = md.digest();
        if (last != null && !java.util.Arrays.equals(d, last)) {
          throw new AssertionError("the same bytes hashed differently");
        }
        last = d;
      }
      System.out.println("digest ok");
    }
  }
}
