package io.lazypull.shim.ondemand;

import java.util.function.LongPredicate;

/**
 * Cyclic id allocation in {@code [min, max]}, like {@code xa_alloc_cyclic}: the next free id
 * after the last one handed out, wrapping, so a just-freed id is not reused at once (a late
 * reply then cannot hit a different request: CVE-2024-41050).
 */
final class CyclicIds {
  private final long min;
  private final long max;
  private long next;

  CyclicIds(long min, long max) {
    if (min < 0 || max < min) {
      throw new IllegalArgumentException("bad id range [" + min + ", " + max + "]");
    }
    this.min = min;
    this.max = max;
    this.next = min;
  }

  /** The next id not {@code inUse}, or -1 if every id is in use. */
  long allocate(LongPredicate inUse) {
    for (long tried = 0; tried <= max - min; tried++) {
      long id = next;
      next = id == max ? min : id + 1;
      if (!inUse.test(id)) {
        return id;
      }
    }
    return -1;
  }
}
