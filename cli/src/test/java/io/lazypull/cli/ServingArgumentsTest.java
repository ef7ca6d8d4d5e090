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
  void holder_withASocketInAMissingDirectory_refusesAndCreatesNothing() throws Exception {
    Path missing = tmp.resolve("no/such/dir");
    Exit e = lazypull(tmp.resolve("holder.log"), "holder", "--socket", missing.resolve("h.sock").toString());
    assertThat(e.code()).isEqualTo(1);
    assertThat(e.output()).contains("lazypull holder: error: no such directory: " + missing);
    assertThat(tmp.resolve("no")).doesNotExist();
  }
}
