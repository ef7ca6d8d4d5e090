package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class ReadaheadTest {
  private static final long UNITS = 1 << 20;

  @Test
  void randomReads_fetchOnlyWhatTheyTouch() {
    Readahead ra = new Readahead();
    assertThat(ra.plan(100, 101, 256, UNITS)).isEqualTo(new Readahead.Window(100, 101));
    assertThat(ra.plan(5000, 5001, 256, UNITS)).isEqualTo(new Readahead.Window(5000, 5001));
    assertThat(ra.plan(70, 72, 256, UNITS)).isEqualTo(new Readahead.Window(70, 72));
  }

  @Test
  void sequentialReads_growOneWindowAheadUpToTheLargest() {
    Readahead ra = new Readahead();
    assertThat(ra.plan(0, 8, 64, UNITS)).isEqualTo(new Readahead.Window(0, 8));
    // The READ right after: a window twice the last, from the READ on.
    assertThat(ra.plan(8, 16, 64, UNITS)).isEqualTo(new Readahead.Window(8, 24));
    // Reaching the part fetched ahead issues the next window beyond it, twice as big.
    assertThat(ra.plan(16, 24, 64, UNITS)).isEqualTo(new Readahead.Window(16, 56));
    assertThat(ra.plan(24, 32, 64, UNITS)).isEqualTo(new Readahead.Window(24, 120));
    // Inside what was issued, before its newest window: nothing more.
    assertThat(ra.plan(32, 40, 64, UNITS)).isEqualTo(new Readahead.Window(32, 40));
    // Windows stop growing at the largest (64 units).
    assertThat(ra.plan(56, 64, 64, UNITS)).isEqualTo(new Readahead.Window(56, 184));
    assertThat(ra.plan(120, 128, 64, UNITS)).isEqualTo(new Readahead.Window(120, 248));
  }

  @Test
  void twoStreams_interleaved_eachKeepsItsWindow_andTheEndOfTheObjectBounds() {
    Readahead ra = new Readahead();
    ra.plan(0, 4, 16, 100);
    ra.plan(50, 54, 16, 100);
    assertThat(ra.plan(4, 8, 16, 100)).isEqualTo(new Readahead.Window(4, 12));
    assertThat(ra.plan(54, 58, 16, 100)).isEqualTo(new Readahead.Window(54, 62));
    assertThat(ra.plan(8, 12, 16, 100)).isEqualTo(new Readahead.Window(8, 28));
    assertThat(ra.plan(62, 66, 16, 100)).isEqualTo(new Readahead.Window(62, 78));
    assertThat(ra.plan(66, 70, 16, 100)).isEqualTo(new Readahead.Window(66, 94));
    assertThat(ra.plan(78, 82, 16, 100)).isEqualTo(new Readahead.Window(78, 100));
  }
}
