package io.lazypull.daemon.kernel;

import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.protocol.CacheFiles;
import io.lazypull.protocol.DeviceCommand;
import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.Opcode;
import io.lazypull.protocol.ProtocolException;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code /dev/cachefiles} in on-demand mode (Linux 5.19+, failover 6.8+), spoken through JNA.
 *
 * <pre>
 *   fresh:    open(O_RDWR) -> "dir D" -> ["tag T"] -> "bind ondemand"     ({@link #open})
 *   held:     fd from a holder -> (caller writes "restore" once)          ({@link #adopt})
 *   serving:  poll(POLLIN) -> read(1 message) -> OPEN: FD_CLOEXEC on its anon fd, "copen id,size"
 *                                               READ: pwrite into the anon fd, ioctl(READ_COMPLETE)
 *                                               CLOSE: close the anon fd
 * </pre>
 *
 * Every command is one write(2) (the kernel parses one command per write). The device is
 * exclusive system-wide: a second open fails with EBUSY while anyone (another daemon, a
 * cachefilesd, a holder keeping it for failover) has it, or while any anon fd is still open.
 *
 * <p>Kernel quirks handled here (shared/spec/cachefiles-ondemand.md, section 7):
 * read(2) returns 0 right after POLLIN (a READ on a CLOSE object only starts its re-open; a
 * kernel before 6.8 also reports POLLIN forever while requests are in flight), so repeated
 * empty wake-ups back off instead of spinning; the read buffer is 8-byte aligned and bigger
 * than {@code CACHEFILES_MSG_MAX_SIZE}, because a too small one (EMSGSIZE) leaves the request
 * queued and a faulting one (EFAULT) fails it; each OPEN's anon fd gets FD_CLOEXEC before
 * anything else happens, because the kernel installs it without, and a child inheriting it
 * would keep the object OPEN past our crash.
 *
 * <p>Thread-safe: one thread reads while others write {@code copen}s; close waits for calls
 * in progress (at most one poll timeout) so that a closed fd number is never reused under us.
 */
public final class KernelDevice implements Device {
  private static final Logger log = LoggerFactory.getLogger(KernelDevice.class);

  /** Read buffer: 4 pages, page-aligned (so 8-byte aligned), far above the 1024-byte maximum. */
  static final int READ_BUFFER_SIZE = 4 * CacheFiles.PAGE_SIZE;
  /** Longest back-off after POLLIN was followed by nothing to read, in milliseconds. */
  static final long MAX_BACKOFF_MILLIS = 50;

  private final String path;
  private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
  private final AtomicBoolean restored = new AtomicBoolean();
  private final ByteBuffer readBuffer = KernelAnonFd.allocateAligned(READ_BUFFER_SIZE)
      .order(ByteOrder.nativeOrder());
  private volatile int fd;
  // Spurious-wake-up tracking, touched only by the thread that polls and reads.
  private boolean polledReadable;
  private boolean deliveredSincePoll;
  private int emptyWakeups;
  private long opens;
  private long reads;
  private long closes;

  private KernelDevice(String path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  /**
   * Opens {@code /dev/cachefiles} and brings a new cache online in on-demand mode: {@code dir
   * cacheDir}, {@code tag} if non-null, {@code bind ondemand}, one write each. Raises
   * RLIMIT_NOFILE first (each open object costs an fd, and running out fails OPENs).
   *
   * @param cacheDir the cache's root; created if missing; must be on a filesystem cachefiles
   *     accepts (ext4, xfs, btrfs: not tmpfs)
   * @throws ErrnoException EBUSY if another daemon or a holder has the device (a held device is
   *     {@linkplain #adopt adopted}, never opened again), ENOENT if the kernel has no cachefiles,
   *     EINVAL/EOPNOTSUPP on {@code bind ondemand} if it has no CACHEFILES_ONDEMAND
   */
  public static KernelDevice open(Path cacheDir, String tag) throws IOException {
    return open(CacheFiles.DEVICE_PATH, cacheDir, tag);
  }

  /** {@link #open(Path, String)} on another device node (tests). */
  static KernelDevice open(String devicePath, Path cacheDir, String tag) throws IOException {
    raiseFdLimit();
    Path dir = cacheDir.toAbsolutePath().normalize();
    Files.createDirectories(dir);
    int fd;
    try {
      fd = Posix.open(devicePath, Posix.O_RDWR, 0);
    } catch (ErrnoException e) {
      throw explainOpen(devicePath, e);
    }
    KernelDevice device = new KernelDevice(devicePath, fd);
    try {
      device.command(new DeviceCommand.Dir(dir.toString()), "");
      if (tag != null && !tag.isEmpty()) {
        device.command(new DeviceCommand.Tag(tag), "");
      }
      device.command(DeviceCommand.Bind.ONDEMAND, bindHint(dir));
    } catch (IOException | RuntimeException e) {
      device.close(); // unbinds: nothing was bound, or the cache dies with our only fd
      throw e;
    }
    log.info("{}: bound in on-demand mode, cache dir {}{}", devicePath, dir, tag == null ? "" : ", tag " + tag);
    return device;
  }

  /**
   * Takes over a device fd that a holder kept bound across a daemon's death (failover). Does
   * not bind again (the cache is still bound: {@code dir}/{@code bind} would fail with
   * EEXIST/EBUSY). The caller writes {@link #restore()} exactly once, after the previous daemon
   * is gone and before reading. This device owns {@code fd} from now on; the holder keeps its
   * own copy.
   */
  public static KernelDevice adopt(int fd) throws IOException {
    if (fd < 0) {
      throw new IllegalArgumentException("bad device fd " + fd);
    }
    raiseFdLimit();
    Posix.setCloexec(fd);
    log.info("{}: adopted held device fd {}", CacheFiles.DEVICE_PATH, fd);
    return new KernelDevice(CacheFiles.DEVICE_PATH, fd);
  }

  /**
   * poll(2) for POLLIN. EINTR counts as a (spurious) wake-up. After a POLLIN that was followed
   * by nothing to read, waits a little (1, 2, 4 .. 50 ms) before reporting readable again:
   * kernels before 6.8 report POLLIN as long as any request is in flight.
   */
  @Override
  public boolean awaitReadable(long timeoutMillis) throws IOException {
    lifecycle.readLock().lock();
    try {
      int f = liveFd();
      if (polledReadable && !deliveredSincePoll) {
        emptyWakeups = Math.min(emptyWakeups + 1, 16);
      } else {
        emptyWakeups = 0;
      }
      polledReadable = false;
      deliveredSincePoll = false;
      int timeout = (int) Math.min(Math.max(timeoutMillis, 0), Integer.MAX_VALUE);
      short revents = Posix.poll(new int[] {f}, new short[] {Posix.POLLIN}, timeout)[0];
      if ((revents & Posix.POLLNVAL) != 0) {
        throw new DeviceDeadException(describe() + ": fd is not open (POLLNVAL)");
      }
      if ((revents & (Posix.POLLERR | Posix.POLLHUP)) != 0) {
        throw new DeviceDeadException(describe() + ": poll reported " + (revents & 0xffff));
      }
      if ((revents & Posix.POLLIN) == 0) {
        return false;
      }
      polledReadable = true;
      if (emptyWakeups > 0) {
        sleep(Math.min(timeout, backoffMillis(emptyWakeups)));
      }
      return true;
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /** The back-off after {@code n} consecutive empty wake-ups: 1, 2, 4 .. capped. */
  static long backoffMillis(int n) {
    return n <= 0 ? 0 : Math.min(MAX_BACKOFF_MILLIS, 1L << Math.min(n - 1, 16));
  }

  /**
   * read(2) of one message. Returns null when the kernel has nothing deliverable (0 bytes), and
   * also after a request the kernel failed during delivery (EMFILE, EEXIST, EFAULT, ENOMEM: it
   * completed that request with the error itself, so there is nothing to answer) or one that
   * does not decode (an OPEN is then refused with EINVAL and its fd closed).
   */
  @Override
  public Request read() throws IOException {
    lifecycle.readLock().lock();
    try {
      synchronized (readBuffer) {
        int f = liveFd();
        ByteBuffer buf = readBuffer.clear();
        int n;
        try {
          n = Posix.read(f, buf);
        } catch (ErrnoException e) {
          return readFailed(e);
        }
        if (n == 0) {
          return null;
        }
        buf.flip();
        int anonFd = takeAnonFd(buf);
        Request r = decode(buf, anonFd);
        if (r != null) {
          deliveredSincePoll = true;
        }
        return r;
      }
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * For an OPEN, the anon fd the kernel has just installed in our fd table: FD_CLOEXEC is set
   * at once, before the message is even checked. -1 for other messages.
   */
  private int takeAnonFd(ByteBuffer buf) {
    if (buf.remaining() < MessageCodec.HEADER_SIZE + MessageCodec.OPEN_SIZE
        || buf.getInt(4) != Opcode.OPEN.code()) {
      return -1;
    }
    int anonFd = buf.getInt(24);
    try {
      Posix.setCloexec(anonFd);
    } catch (ErrnoException e) {
      log.error("OPEN msg {}: cannot set FD_CLOEXEC on anon fd {}: {}", Integer.toUnsignedString(buf.getInt(0)),
          anonFd, e.getMessage());
    }
    return anonFd;
  }

  /** Decodes one message (len == bytes read is checked by the codec) into a Request. */
  private Request decode(ByteBuffer buf, int anonFd) throws IOException {
    Message m;
    try {
      m = MessageCodec.decode(buf);
    } catch (ProtocolException e) {
      return undecodable(buf, anonFd, e);
    }
    if (m instanceof Message.Open o) {
      opens++;
      return new Request.Open(o.msgId(), o.objectId(), o.volumeKey(), o.cookieKey(),
          new KernelAnonFd(o.fd(), o.objectId()));
    }
    if (m instanceof Message.Read rd) {
      reads++;
      return new Request.Read(rd.msgId(), rd.objectId(), rd.offset(), rd.length());
    }
    Message.Close c = (Message.Close) m;
    closes++;
    return new Request.Close(c.msgId(), c.objectId());
  }

  /**
   * A message that does not decode means a kernel ABI we do not understand. An OPEN is refused
   * (copen -EINVAL, then its fd closed, in that order: closing first would fail the copen with
   * EBADFD); a READ or CLOSE cannot be answered without its object, so it is logged loudly.
   */
  private Request undecodable(ByteBuffer buf, int anonFd, ProtocolException e) {
    int msgId = buf.remaining() >= 4 ? buf.getInt(0) : -1;
    log.error("{}: undecodable message ({} bytes): {}", describe(), buf.remaining(), e.getMessage());
    if (anonFd >= 0) {
      try {
        copenError(msgId, Errno.EINVAL);
      } catch (IOException ce) {
        log.warn("refusing undecodable OPEN {}: {}", Integer.toUnsignedString(msgId), ce.getMessage());
      } finally {
        Posix.closeQuietly(anonFd);
      }
    }
    return null;
  }

  private Request readFailed(ErrnoException e) throws IOException {
    switch (e.errno()) {
      case Errno.EAGAIN:
        return null;
      case Errno.EMFILE:
        log.error("{}: an OPEN failed with EMFILE: out of file descriptors (RLIMIT_NOFILE); the kernel failed that"
            + " lookup", describe());
        return null;
      case Errno.EEXIST:
      case Errno.EFAULT:
      case Errno.ENOMEM:
        // The kernel completed that request with this error itself; nothing is left to answer.
        log.warn("{}: the kernel failed a request while delivering it: {}", describe(), e.getMessage());
        return null;
      case Errno.EMSGSIZE:
        throw new IOException(describe() + ": a message is larger than the " + READ_BUFFER_SIZE
            + "-byte read buffer (the kernel's maximum is " + MessageCodec.MSG_MAX_SIZE + ")", e);
      default:
        throw e;
    }
  }

  @Override
  public void copen(int msgId, long size) throws IOException {
    if (size < 0) {
      throw new IllegalArgumentException("copen size " + size + " < 0: use copenError");
    }
    command(new DeviceCommand.Copen(msgId, size), "");
  }

  @Override
  public void copenError(int msgId, int errno) throws IOException {
    command(DeviceCommand.Copen.error(msgId, errno), "");
  }

  /**
   * Writes {@code restore}: every request still pending in the kernel (including those the
   * dead daemon had read but not answered) becomes deliverable again. Exactly once per device
   * adoption, before the first read.
   *
   * @throws IllegalStateException on a second call
   */
  @Override
  public void restore() throws IOException {
    if (!restored.compareAndSet(false, true)) {
      throw new IllegalStateException("restore was already written on " + describe()
          + ": a second one would re-deliver requests in flight");
    }
    command(DeviceCommand.Restore.INSTANCE,
        " (EOPNOTSUPP: the cache is not in on-demand mode, or the kernel has no failover: Linux < 6.8)");
    log.info("{}: restore written: pending requests are deliverable again", describe());
  }

  @Override
  public int fd() {
    return fd;
  }

  @Override
  public String describe() {
    return path + " (fd " + fd + ")";
  }

  /** Messages read since this device was opened or adopted: OPEN, READ and CLOSE. */
  public long[] counts() {
    synchronized (readBuffer) {
      return new long[] {opens, reads, closes};
    }
  }

  /**
   * Closes this process's device fd; idempotent. With no other copy (no holder), the cache goes
   * DEAD: in-flight reads get EIO and the mounts using it must be torn down.
   */
  @Override
  public void close() {
    lifecycle.writeLock().lock();
    try {
      int old = fd;
      fd = -1;
      if (old >= 0) {
        Posix.closeQuietly(old);
      }
    } finally {
      lifecycle.writeLock().unlock();
    }
  }

  /** One command, one write(2); the errno is reported with the command and {@code hint}. */
  private void command(DeviceCommand cmd, String hint) throws IOException {
    lifecycle.readLock().lock();
    try {
      int f = liveFd();
      byte[] text = cmd.text().getBytes(StandardCharsets.ISO_8859_1);
      if (text.length > CacheFiles.PAGE_SIZE - 1 || cmd.text().indexOf('\n') >= 0 || cmd.text().indexOf('\0') >= 0) {
        throw new IllegalArgumentException("not a single device command: " + MessageCodec.printable(cmd.text()));
      }
      int n;
      try {
        n = Posix.write(f, ByteBuffer.wrap(text));
      } catch (ErrnoException e) {
        if (e.errno() == Errno.EIO) {
          throw new DeviceDeadException(describe() + ": '" + cmd.text() + "': EIO: the cache is DEAD", e);
        }
        throw new ErrnoException("write", e.errno(), "'" + cmd.text() + "' to " + path + hint);
      }
      if (n != text.length) {
        throw new IOException(describe() + ": '" + cmd.text() + "': short write " + n + " of " + text.length);
      }
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  private static String bindHint(Path dir) {
    String fsType;
    try {
      fsType = Files.getFileStore(dir).type();
    } catch (IOException e) {
      fsType = "unknown";
    }
    return " (EINVAL or EOPNOTSUPP: this kernel has no CONFIG_CACHEFILES_ONDEMAND, or the cache dir's"
        + " filesystem (" + fsType + ") is unsuitable: cachefiles needs xattrs, O_DIRECT and block size <= page,"
        + " so ext4/xfs/btrfs, not tmpfs; EROFS: read-only; EBUSY: already bound)";
  }

  private static IOException explainOpen(String devicePath, ErrnoException e) {
    String why;
    switch (e.errno()) {
      case Errno.EBUSY:
        why = "is busy: another cachefiles daemon (cachefilesd, a lazypull daemon) or a lazypull holder has it open,"
            + " or anon fds of a previous cache are still open; a held device is adopted from its holder, not"
            + " opened again";
        break;
      case Errno.ENOENT:
      case Errno.ENODEV:
      case Errno.ENXIO:
        why = "does not exist: the kernel has no CONFIG_CACHEFILES (or the module is not loaded: modprobe cachefiles)";
        break;
      case Errno.EPERM:
      case Errno.EACCES:
        why = "needs CAP_SYS_ADMIN (run as root)";
        break;
      default:
        why = "cannot be opened";
    }
    return new ErrnoException("open", e.errno(), devicePath + " " + why);
  }

  private static void raiseFdLimit() {
    try {
      long limit = Posix.raiseNoFileLimit();
      log.debug("RLIMIT_NOFILE raised to {}", limit);
    } catch (ErrnoException e) {
      log.warn("cannot raise RLIMIT_NOFILE (each cache object costs an fd; OPENs fail with EMFILE when they run"
          + " out): {}", e.getMessage());
    }
  }

  private int liveFd() throws DeviceDeadException {
    int f = fd;
    if (f < 0) {
      throw new DeviceDeadException(path + ": closed");
    }
    return f;
  }

  private static void sleep(long millis) throws IOException {
    if (millis <= 0) {
      return;
    }
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted while backing off");
    }
  }
}
