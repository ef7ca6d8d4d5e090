package io.lazypull.shim;

import java.util.concurrent.atomic.LongAdder;

/** The shim's counters: what FUSE asked for and how much of it the cache had. */
public final class ShimStats {
  final LongAdder lookups = new LongAdder();
  final LongAdder opens = new LongAdder();
  final LongAdder fuseReads = new LongAdder();
  final LongAdder bytesServed = new LongAdder();
  /** FUSE reads served from the cache file without any READ request. */
  final LongAdder cacheHits = new LongAdder();
  /** READ requests sent to the daemon. */
  final LongAdder readRequests = new LongAdder();
  final LongAdder readFailures = new LongAdder();

  public long lookups() {
    return lookups.sum();
  }

  public long opens() {
    return opens.sum();
  }

  public long fuseReads() {
    return fuseReads.sum();
  }

  public long bytesServed() {
    return bytesServed.sum();
  }

  public long cacheHits() {
    return cacheHits.sum();
  }

  public long readRequests() {
    return readRequests.sum();
  }

  public long readFailures() {
    return readFailures.sum();
  }

  @Override
  public String toString() {
    return "lookups " + lookups() + ", opens " + opens() + ", FUSE reads " + fuseReads() + " ("
        + bytesServed() + " bytes served, " + cacheHits() + " cache hits, " + readRequests()
        + " READ requests, " + readFailures() + " failed)";
  }
}
