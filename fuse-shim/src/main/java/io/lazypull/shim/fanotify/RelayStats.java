package io.lazypull.shim.fanotify;

import java.util.concurrent.atomic.LongAdder;

/** The relay's counters: events, and how they were answered. */
public final class RelayStats {
  final LongAdder events = new LongAdder();
  /** Allowed at once: the range was in the cache file already. */
  final LongAdder cached = new LongAdder();
  /** Allowed after READ requests filled the range. */
  final LongAdder fetched = new LongAdder();
  /** Denied with EIO: the range stayed a hole (fetch failed, device dead, relay stopping). */
  final LongAdder denied = new LongAdder();
  /** Allowed: not one of the relay's files. */
  final LongAdder unknown = new LongAdder();
  final LongAdder marks = new LongAdder();
  final LongAdder unmarks = new LongAdder();

  public long events() {
    return events.sum();
  }

  public long cached() {
    return cached.sum();
  }

  public long fetched() {
    return fetched.sum();
  }

  public long denied() {
    return denied.sum();
  }

  public long unknown() {
    return unknown.sum();
  }

  public long marks() {
    return marks.sum();
  }

  public long unmarks() {
    return unmarks.sum();
  }

  @Override
  public String toString() {
    return "events " + events() + " (" + cached() + " cached, " + fetched() + " fetched, " + denied() + " denied, "
        + unknown() + " not ours), blobs marked " + marks()
        + ", unmarked when complete " + unmarks();
  }
}
