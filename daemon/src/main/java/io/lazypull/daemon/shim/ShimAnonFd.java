package io.lazypull.daemon.shim;

import io.lazypull.daemon.device.AnonFd;
import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.protocol.CacheFiles;
import io.lazypull.protocol.ProtocolException;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The anon fd of one OPEN from the shim: the daemon's end of the object's anon socket (its last
 * close is what the shim sees as the kernel's anon fd release) and the object's cache file,
 * opened O_RDWR by the shim. Data goes straight into the cache file with pwrite; a READ is
 * completed by a CREAD datagram on the anon socket, one at a time per object.
 *
 * <p>The kernel's anon fd rules are kept so that a daemon tested here behaves on
 * /dev/cachefiles: writes start page-aligned (ENOBUFS otherwise) and are whole 512-byte blocks
 * (O_DIRECT: EINVAL otherwise).
 */
public final class ShimAnonFd implements AnonFd {
  private static final int DIO_BLOCK = 512;

  private final UnixSocket anon;
  private final int cacheFd;
  private final int objectId;
  /** Writers and CREADs share it; close takes it exclusively, so no fd is closed under a call. */
  private final ReentrantReadWriteLock closing = new ReentrantReadWriteLock();
  private final Object creads = new Object();
  private boolean closed;

  ShimAnonFd(UnixSocket anon, int cacheFd, int objectId) {
    this.anon = anon;
    this.cacheFd = cacheFd;
    this.objectId = objectId;
  }

  /** The object id of the OPEN that made this fd. */
  public int objectId() {
    return objectId;
  }

  @Override
  public void write(long offset, ByteBuffer data) throws IOException {
    if (offset % CacheFiles.PAGE_SIZE != 0) {
      throw new ErrnoException("pwrite", Errno.ENOBUFS, "object " + objectId + " @" + offset + ": not page-aligned");
    }
    if (data.remaining() % DIO_BLOCK != 0) {
      throw new ErrnoException("pwrite", Errno.EINVAL, "object " + objectId + " @" + offset + " len "
          + data.remaining() + ": not whole blocks");
    }
    closing.readLock().lock();
    try {
      checkOpen();
      Posix.pwriteFully(cacheFd, data, offset);
    } finally {
      closing.readLock().unlock();
    }
  }

  @Override
  public void completeRead(int msgId) throws IOException {
    closing.readLock().lock();
    try {
      checkOpen();
      int result;
      synchronized (creads) {
        try {
          anon.send(ShimWire.encodeCread(msgId));
        } catch (ErrnoException e) {
          if (e.errno() == Errno.EPIPE || e.errno() == Errno.ECONNRESET) {
            throw new DeviceDeadException("object " + objectId + ": the shim closed its anon socket", e);
          }
          throw e;
        }
        ByteBuffer b = ByteBuffer.allocate(ShimWire.RESULT_SIZE + 4);
        UnixSocket.Received r;
        try {
          r = anon.receive(b);
        } catch (ErrnoException e) {
          if (e.errno() == Errno.ECONNRESET) {
            throw new DeviceDeadException("object " + objectId + ": the shim closed its anon socket", e);
          }
          throw e;
        }
        r.closeFds();
        if (r.eof()) {
          throw new DeviceDeadException("object " + objectId + ": the shim closed its anon socket");
        }
        result = ShimWire.decodeResult(b.flip());
      }
      if (result < 0) {
        throw new ErrnoException("ioctl(READ_COMPLETE)", -result, "msg " + Integer.toUnsignedString(msgId)
            + " on object " + objectId);
      }
    } catch (ProtocolException e) {
      throw new IOException("object " + objectId + ": bad CREAD reply: " + e.getMessage(), e);
    } finally {
      closing.readLock().unlock();
    }
  }

  @Override
  public long seekData(long offset) throws IOException {
    closing.readLock().lock();
    try {
      checkOpen();
      return Posix.seekData(cacheFd, offset);
    } finally {
      closing.readLock().unlock();
    }
  }

  @Override
  public long seekHole(long offset) throws IOException {
    closing.readLock().lock();
    try {
      checkOpen();
      return Posix.seekHole(cacheFd, offset);
    } finally {
      closing.readLock().unlock();
    }
  }

  /** Closes both fds (no shutdown: the shim sees EOF when the last copy closes). Idempotent. */
  @Override
  public void close() {
    closing.writeLock().lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      anon.release();
      Posix.closeQuietly(cacheFd);
    } finally {
      closing.writeLock().unlock();
    }
  }

  private void checkOpen() throws ErrnoException {
    if (closed) {
      throw new ErrnoException("anon fd", Errno.EBADF, "object " + objectId + " is closed");
    }
  }

  @Override
  public String toString() {
    return "ShimAnonFd{object " + objectId + (closed ? ", closed" : "") + "}";
  }
}
