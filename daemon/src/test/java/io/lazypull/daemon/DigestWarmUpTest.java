package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class DigestWarmUpTest {
  @Test
  void startsOneBackgroundThreadPerJvm_thatEnds() throws Exception {
    Thread first = DigestWarmUp.start();
    Thread again = DigestWarmUp.start();
    assertThat(again).isSameAs(first);
    assertThat(first.isDaemon()).as("never keeps the JVM alive").isTrue();
    assertThat(first.getName()).isEqualTo("sha256-warm-up");
    first.join(30_000);
    assertThat(first.isAlive()).isFalse();
  }
}
