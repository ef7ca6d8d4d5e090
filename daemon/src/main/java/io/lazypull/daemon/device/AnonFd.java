package io.lazypull.daemon.device;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The per-object fd an OPEN hands over (an anon inode in the kernel, a socket pair plus the
 * cache file's fd in the shim). Writes go into the object's cache file; closing it moves the
 * object to CLOSE, which is how the kernel notices a daemon crash. Never close it between
 * reading a READ and completing it.
 */
public interface AnonFd extends Closeable {
  /**
   * Writes {@code data} (from its position) at {@code offset} in the cache file. The offset
   * must be page-aligned and the length a whole number of pages (the kernel writes with
   * O_DIRECT); for the kernel the buffer must also be page-aligned native memory.
   */
  void write(long offset, ByteBuffer data) throws IOException;

  /** Completes READ {@code msgId} ({@code CACHEFILES_IOC_READ_COMPLETE}). */
  void completeRead(int msgId) throws IOException;

  /** The first cached offset at or after {@code offset} (SEEK_DATA), or -1 if none. */
  long seekData(long offset) throws IOException;

  /** The first uncached offset at or after {@code offset} (SEEK_HOLE), or -1 past the end. */
  long seekHole(long offset) throws IOException;

  /** Closes this process's fd(s) for the object. Idempotent. */
  @Override
  void close();
}
