package io.lazypull.daemon.device;

import java.io.Closeable;
import java.io.IOException;

/**
 * The daemon's end of an on-demand cache: {@code /dev/cachefiles} in on-demand mode, or the
 * fuse-shim's emulation of it, or the fanotify relay. Everything above this interface (the
 * request loop, blob resolution, fetching, failover) is one code path for all of them.
 *
 * <p>The semantics are the kernel's (see shared/spec/cachefiles-ondemand.md): {@link #read()}
 * hands out each request once; an OPEN must be answered with exactly one {@code copen}; a READ
 * is completed through the OPEN's {@link AnonFd}; CLOSE has no reply; {@link #restore()} makes
 * every pending request deliverable again after a daemon crash.
 *
 * <p>Implementations are thread-safe: the loop reads while pool threads answer.
 */
public interface Device extends Closeable {
  /**
   * Waits until {@link #read()} may return a request, or the timeout passes. Returns false on
   * timeout. A true result may be spurious ({@code read()} then returns null), as with poll(2).
   *
   * @throws DeviceDeadException if the device is gone (the shim died, the socket closed)
   */
  boolean awaitReadable(long timeoutMillis) throws IOException;

  /** The next deliverable request, or null if there is none right now (read(2) returning 0). */
  Request read() throws IOException;

  /** Answers an OPEN: the object exists and has {@code size} bytes. */
  void copen(int msgId, long size) throws IOException;

  /** Answers an OPEN with a failure: the lookup fails with {@code errno} (1..4095). */
  void copenError(int msgId, int errno) throws IOException;

  /** Re-delivers every pending request (failover): write exactly once, before reading. */
  void restore() throws IOException;

  /**
   * The device's file descriptor, to hand to a holder (SCM_RIGHTS or systemd's fd store) so
   * that the device outlives this process.
   */
  int fd();

  /** What this device is, for logs: "/dev/cachefiles" or "shim:/run/lazypull/shim.sock". */
  String describe();

  /**
   * Lets go of this process's reference. The device itself lives on while a holder keeps a
   * copy of {@link #fd()}; it is torn down only when every copy is closed.
   */
  @Override
  void close();
}
