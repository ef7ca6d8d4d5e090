package io.lazypull.daemon;

import io.lazypull.daemon.device.AnonFd;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An object the device opened and we answered with a size: its anon fd, the blob behind it and
 * the fetches in flight for it. The anon fd is closed when the object is closed (CLOSE, stop)
 * AND no READ of it is still being served: closing it between reading a READ and completing it
 * would leave the reader hanging.
 */
final class CacheObject {
  final int objectId;
  final AnonFd fd;
  final Domains.BlobRef blob;
  final long size;
  /**
   * Fetches in flight, by unit (piece) index: concurrent READs of one unit share a fetch.
   * Changed under its own lock, so that two READs never both start fetching one unit.
   */
  final ConcurrentHashMap<Long, CompletableFuture<Void>> inflight = new ConcurrentHashMap<>();
  /** Window sizing of this object's missed READs. */
  final Readahead readahead = new Readahead();

  private int users = 1; // the object table's reference
  private boolean closed;

  CacheObject(int objectId, AnonFd fd, Domains.BlobRef blob, long size) {
    this.objectId = objectId;
    this.fd = fd;
    this.blob = blob;
    this.size = size;
  }

  /** Takes a reference for a READ being served; false if the object is already closed. */
  synchronized boolean acquire() {
    if (closed) {
      return false;
    }
    users++;
    return true;
  }

  /** Drops a reference; the last one closes the anon fd. */
  void release() {
    boolean last;
    synchronized (this) {
      last = --users == 0;
      if (last) {
        closed = true;
      }
    }
    if (last) {
      fd.close();
    }
  }

  /** True if every byte of [start, end) is already in the cache file. */
  boolean isCached(long start, long end) throws IOException {
    long hole = fd.seekHole(start);
    return hole >= end;
  }

  @Override
  public String toString() {
    return "object " + objectId + " (" + blob + ", " + size + " bytes)";
  }
}
