package io.lazypull.daemon.kernel;

import io.lazypull.daemon.device.AnonFd;
import io.lazypull.protocol.CacheFiles;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The anon fd the kernel installs for each OPEN it delivers ({@code anon_inode "[cachefiles]"},
 * O_WRONLY, pwrite + lseek + one ioctl). It pins the cache object: its last close moves the
 * object to CLOSE, so this process's copy must be closed on CLOSE and never while a READ of the
 * object is still being served (the owner, the request loop, ensures the latter).
 *
 * <p>Writes go to the backing cache file through cachefiles' direct-I/O path, hence the rules
 * {@link #write} enforces: page-aligned offset (else ENOBUFS), page-aligned native memory and a
 * whole number of pages (else EINVAL).
 */
public final class KernelAnonFd implements AnonFd {
  static final int PAGE = CacheFiles.PAGE_SIZE;
  /** Short writes that made no whole page of progress before we give up. */
  private static final int MAX_STALLS = 3;

  private final AtomicInteger fd;
  private final int objectId;

  /**
   * Wraps an anon fd this process received in an OPEN (FD_CLOEXEC already set by the device).
   * The new object owns the fd.
   */
  public KernelAnonFd(int fd, int objectId) {
    if (fd < 0) {
      throw new IllegalArgumentException("bad anon fd " + fd + " for object " + objectId);
    }
    this.fd = new AtomicInteger(fd);
    this.objectId = objectId;
  }

  /** The fd number, or -1 once closed. */
  public int fd() {
    return fd.get();
  }

  /**
   * pwrite(2)s all of {@code data} (position to limit) at {@code offset}. A buffer that is not
   * page-aligned native memory is staged through one that is. Short writes are continued from
   * the last whole page; a reported count larger than asked (kernels before 6.13 round it up)
   * counts as complete. The buffer's position is not changed.
   */
  @Override
  public void write(long offset, ByteBuffer data) throws IOException {
    int len = data.remaining();
    if (offset < 0 || offset % PAGE != 0) {
      throw new IllegalArgumentException("object " + objectId + ": write offset " + offset
          + " is not page-aligned (the kernel answers ENOBUFS)");
    }
    if (len % PAGE != 0) {
      throw new IllegalArgumentException("object " + objectId + ": write of " + len + " bytes at " + offset
          + " is not a whole number of pages");
    }
    ByteBuffer src = isPageAligned(data) ? data.slice() : stage(data);
    writeLoop(Posix::pwriteReported, liveFd(), objectId, src, offset);
  }

  /** pwrite(2) reporting the kernel's count; a seam for tests of the short-write handling. */
  @FunctionalInterface
  interface Pwrite {
    long pwrite(int fd, ByteBuffer src, long offset) throws IOException;
  }

  /** Writes all of {@code src} (position 0 to limit, page-aligned) at {@code offset}. */
  static void writeLoop(Pwrite pw, int fd, int objectId, ByteBuffer src, long offset) throws IOException {
    int len = src.remaining();
    int done = 0;
    int stalls = 0;
    while (done < len) {
      ByteBuffer rest = src.duplicate().position(done).limit(len);
      long n = pw.pwrite(fd, rest, offset + done);
      long left = len - done;
      if (n >= left) {
        return; // all of it (kernels before 6.13 may report more: the block-rounded length)
      }
      // Continue at a page boundary: every pwrite must start page-aligned.
      long advance = n - n % PAGE;
      if (advance == 0) {
        if (++stalls > MAX_STALLS) {
          throw new ErrnoException("pwrite", Errno.EIO, "anon fd " + fd + " of object " + objectId
              + " @" + (offset + done) + ": " + n + " of " + left + " bytes written, no progress");
        }
        continue;
      }
      stalls = 0;
      done += (int) advance;
    }
  }

  /** {@code ioctl(fd, CACHEFILES_IOC_READ_COMPLETE, msgId)}, the msg_id passed by value. */
  @Override
  public void completeRead(int msgId) throws IOException {
    Posix.ioctl(liveFd(), CacheFiles.IOC_READ_COMPLETE, Integer.toUnsignedLong(msgId));
  }

  @Override
  public long seekData(long offset) throws IOException {
    return Posix.seekData(liveFd(), offset);
  }

  @Override
  public long seekHole(long offset) throws IOException {
    return Posix.seekHole(liveFd(), offset);
  }

  /** Closes this process's fd; the object goes to CLOSE once no other copy remains. */
  @Override
  public void close() {
    int old = fd.getAndSet(-1);
    if (old >= 0) {
      Posix.closeQuietly(old);
    }
  }

  @Override
  public String toString() {
    return "anon fd " + fd.get() + " (object " + objectId + ")";
  }

  private int liveFd() throws ErrnoException {
    int f = fd.get();
    if (f < 0) {
      throw new ErrnoException("anon fd", Errno.EBADF, "object " + objectId + ": already closed");
    }
    return f;
  }

  /** True if {@code b} is native memory whose position sits on a page boundary. */
  static boolean isPageAligned(ByteBuffer b) {
    return b.isDirect() && b.alignmentOffset(b.position(), PAGE) == 0;
  }

  /** A page-aligned direct copy of {@code data}'s remaining bytes (data is not consumed). */
  static ByteBuffer stage(ByteBuffer data) {
    ByteBuffer copy = allocateAligned(data.remaining());
    copy.put(data.duplicate()).flip();
    return copy;
  }

  /** Page-aligned native memory of {@code size} bytes, position 0, limit {@code size}. */
  public static ByteBuffer allocateAligned(int size) {
    return ByteBuffer.allocateDirect(size + PAGE).alignedSlice(PAGE).limit(size).slice();
  }
}
