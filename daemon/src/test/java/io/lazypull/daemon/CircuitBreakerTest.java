package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.daemon.CircuitBreaker.Due;
import io.lazypull.daemon.CircuitBreaker.State;
import org.junit.jupiter.api.Test;

/** The breaker's states and moves, with a clock that stands still. */
class CircuitBreakerTest {
  static final long FIRST = 1_000;
  static final long MAX = 5_000;

  final CircuitBreaker.Probe probeA = () -> {};
  final CircuitBreaker.Probe probeB = () -> {};
  final CircuitBreaker b = new CircuitBreaker("test://backend", FIRST, MAX, () -> 0L);

  @Test
  void closed_allowsRequests_andAnAnswerKeepsItClosed() {
    assertThat(b.allows()).isTrue();
    b.succeeded();
    assertThat(b.state()).isEqualTo(State.CLOSED);
    assertThat(b.startProbe(0)).isNull();
    assertThat(b.probeFailed(0, "x")).isNull();
  }

  @Test
  void failed_opens_once_andRequestsAreRefusedUntilAnAnswer() {
    assertThat(b.failed("timeout", probeA)).isEqualTo(new Due(1, FIRST));
    assertThat(b.state()).isEqualTo(State.OPEN);
    assertThat(b.allows()).isFalse();
    assertThat(b.failed("timeout again", probeB)).as("already open: no second probe chain").isNull();
    b.succeeded();
    assertThat(b.state()).isEqualTo(State.CLOSED);
    assertThat(b.allows()).isTrue();
  }

  @Test
  void probe_runsTheLatestFailedRequest_oneAtATime() {
    b.failed("a", probeA);
    b.failed("b", probeB);
    assertThat(b.startProbe(1)).isSameAs(probeB);
    assertThat(b.state()).isEqualTo(State.PROBING);
    assertThat(b.allows()).as("still refused while probing").isFalse();
    assertThat(b.startProbe(1)).as("one probe at a time").isNull();
  }

  @Test
  void probeFailed_reopens_withTheWaitDoubled_upToTheMaximum() {
    b.failed("a", probeA);
    long[] waits = new long[5];
    for (int i = 0; i < waits.length; i++) {
      assertThat(b.startProbe(1)).isNotNull();
      waits[i] = b.probeFailed(1, "still down").delayNanos();
      assertThat(b.state()).isEqualTo(State.OPEN);
    }
    assertThat(waits).containsExactly(2 * FIRST, 4 * FIRST, MAX, MAX, MAX);
  }

  @Test
  void probeSucceeded_closes() {
    b.failed("a", probeA);
    b.startProbe(1);
    b.succeeded();
    assertThat(b.state()).isEqualTo(State.CLOSED);
    assertThat(b.allows()).isTrue();
  }

  @Test
  void answerDuringAProbe_closes_andTheProbesLateFailureIsIgnored() {
    b.failed("a", probeA);
    b.startProbe(1);
    b.succeeded(); // a fetch that went on in the background got its bytes
    assertThat(b.probeFailed(1, "late")).isNull();
    assertThat(b.state()).isEqualTo(State.CLOSED);
  }

  @Test
  void probeOfAnEarlierOutage_isStale() {
    b.failed("a", probeA);
    b.succeeded();
    assertThat(b.failed("again", probeB)).isEqualTo(new Due(2, FIRST)); // a new episode, the first wait again
    assertThat(b.startProbe(1)).as("scheduled for episode 1").isNull();
    assertThat(b.startProbe(2)).isSameAs(probeB);
    assertThat(b.probeFailed(1, "stale")).isNull();
    assertThat(b.state()).isEqualTo(State.PROBING);
  }
}
