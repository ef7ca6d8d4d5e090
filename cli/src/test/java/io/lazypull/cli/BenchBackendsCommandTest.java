package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** A tiny run of {@code lazypull bench backends}: every loopback backend gets its rows. */
class BenchBackendsCommandTest {
  @Test
  void tinyRun_printsATableForEveryLoopbackBackend() {
    BackendCommandsTest.Run r = BackendCommandsTest.run("bench", "backends", "--size-mib", "2",
        "--runs", "5", "--threads", "2");
    assertThat(r.code()).as(r.err()).isZero();
    String table = r.text();
    assertThat(table).startsWith("backend").contains("p50 ms").contains("p99 ms");
    for (String op : new String[] {"put (upload)", "read 4 KiB", "read 128 KiB", "read 1 MiB",
        "read 1 MiB x2 threads", "whole blob (streamed, verified)"}) {
      assertThat(table).contains("file ").contains(op);
    }
    assertThat(table).contains("s3 (S3Proxy)"); // S3Proxy is on the test classpath
    if (io.lazypull.backend.loopback.RegistryServer.find() != null) {
      assertThat(table).contains("registry ");
    } else {
      System.err.println("NOTE BenchBackendsCommandTest: docker-registry not installed, no registry rows");
      assertThat(table).contains("note: registry: skipped");
    }
  }
}
