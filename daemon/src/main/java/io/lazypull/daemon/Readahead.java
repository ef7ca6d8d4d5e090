package io.lazypull.daemon;

/**
 * Sizes the fetch windows of one object's missed READs, in units (pieces), the way the kernel
 * sizes its readahead: a READ that no stream explains is random and fetches only the units it
 * touches (a 4 KiB read costs one 16 KiB piece, not a 1 MiB window); a READ at the end of a
 * stream's last window, or inside the newest window fetched ahead, is sequential and issues
 * the next window, twice the last one up to the largest, keeping two windows ahead of the
 * reader. So a sequential reader has one or two windows in flight ahead of it, growing to the
 * largest, while random reads fetch what they ask for. The daemon only sees misses (cached ranges are served by the front end), so a
 * stream advances on the READs that reach a window fetched ahead (its marker) or its end.
 *
 * <p>A few streams are tracked per object (readers of different files of one image share its
 * data blob); the least recently used is replaced.
 */
final class Readahead {
  private static final int STREAMS = 8;

  /** Units to make present: [from, to), which covers the READ's own units. */
  record Window(long from, long to) {}

  private final long[] lo = new long[STREAMS]; // READs from here to the marker are the stream's own
  private final long[] marker = new long[STREAMS]; // a READ from here to next continues the stream
  private final long[] next = new long[STREAMS]; // the unit after the stream's last window
  private final int[] size = new int[STREAMS]; // units in that window; 0 = free slot
  private final long[] used = new long[STREAMS];
  private long clock;

  /**
   * The window for a missed READ of units [first, last) of an object of {@code units} units,
   * windows growing up to {@code max} units.
   */
  synchronized Window plan(long first, long last, int max, long units) {
    clock++;
    int ask = (int) Math.min(Integer.MAX_VALUE, last - first);
    for (int i = 0; i < STREAMS; i++) {
      if (size[i] > 0 && first >= lo[i] && first < marker[i]) {
        used[i] = clock; // inside what the stream already issued: nothing more yet
        return new Window(first, last);
      }
    }
    for (int i = 0; i < STREAMS; i++) {
      if (size[i] > 0 && first >= marker[i] && first <= next[i]) {
        // Sequential: the reader reached the newest window fetched ahead, or caught up with
        // the end of the stream. The next window, twice the last, beyond what was issued, and
        // at least two windows ahead of the reader: each fetch pays a round trip, so two are
        // in flight while the reader consumes what came before.
        int grown = (int) Math.min(max, Math.max(2L * size[i], ask));
        long to = Math.max(next[i], last) + grown;
        to = Math.min(units, Math.max(to, last + 2L * grown));
        lo[i] = first < next[i] ? marker[i] : first;
        marker[i] = Math.max(last, to - grown);
        next[i] = to;
        size[i] = grown;
        used[i] = clock;
        return new Window(first, to);
      }
    }
    // Random (or the first READ of a stream): only what was asked; a READ at its end will
    // continue it.
    int slot = 0;
    for (int i = 1; i < STREAMS; i++) {
      if (used[i] < used[slot]) {
        slot = i;
      }
    }
    lo[slot] = first;
    marker[slot] = last;
    next[slot] = last;
    size[slot] = Math.max(1, ask);
    used[slot] = clock;
    return new Window(first, last);
  }
}
