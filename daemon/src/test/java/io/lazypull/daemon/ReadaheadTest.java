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
  void sequentialReads_growTwoWindowsAheadUpToTheLargest() {
    Readahead ra = new Readahead();
    assertThat(ra.plan(0, 8, 64, UNITS)).isEqualTo(new Readahead.Window(0, 8));
    // The READ right after: two windows of twice the last beyond it.
    assertThat(ra.plan(8, 16, 64, UNITS)).isEqualTo(new Readahead.Window(8, 48));
    // Inside the first window fetched ahead: nothing more.
    assertThat(ra.plan(16, 24, 64, UNITS)).isEqualTo(new Readahead.Window(16, 24));
    // Reaching the newest window: the next, twice as big, two windows ahead of the reader.
    assertThat(ra.plan(32, 40, 64, UNITS)).isEqualTo(new Readahead.Window(32, 104));
    assertThat(ra.plan(40, 48, 64, UNITS)).isEqualTo(new Readahead.Window(40, 48));
    assertThat(ra.plan(72, 80, 64, UNITS)).isEqualTo(new Readahead.Window(72, 208));
    // Windows stop growing at the largest (64 units).
    assertThat(ra.plan(144, 152, 64, UNITS)).isEqualTo(new Readahead.Window(144, 280));
  }

  @Test
  void twoStreams_interleaved_eachKeepsItsWindow_andTheEndOfTheObjectBounds() {
    Readahead ra = new Readahead();
    ra.plan(0, 4, 16, 100);
    ra.plan(50, 54, 16, 100);
    assertThat(ra.plan(4, 8, 16, 100)).isEqualTo(new Readahead.Window(4, 24));
    assertThat(ra.plan(54, 58, 16, 100)).isEqualTo(new Readahead.Window(54, 74));
    assertThat(ra.plan(8, 12, 16, 100)).isEqualTo(new Readahead.Window(8, 12));
    assertThat(ra.plan(16, 20, 16, 100)).isEqualTo(new Readahead.Window(16, 52));
    assertThat(ra.plan(66, 70, 16, 100)).isEqualTo(new Readahead.Window(66, 100));
  }
}
