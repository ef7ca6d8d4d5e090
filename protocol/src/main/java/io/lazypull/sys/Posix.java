package io.lazypull.sys;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Checked wrappers of the POSIX calls lazypull makes on raw file descriptors. Each returns the
 * call's value or throws {@link ErrnoException}; none retries except on EINTR.
 *
 * <p>Buffers: direct {@link ByteBuffer}s are used in place (zero copy, and the address keeps
 * the alignment O_DIRECT writes need); heap buffers are staged through native memory.
 * Reads and writes consume the buffer from its position, like channels do.
 */
public final class Posix {
  public static final int O_RDONLY = 0;
  public static final int O_WRONLY = 1;
  public static final int O_RDWR = 2;
  public static final int O_CREAT = 0100;
  public static final int O_EXCL = 0200;
  public static final int O_NOCTTY = 0400;
  public static final int O_TRUNC = 01000;
  public static final int O_NONBLOCK = 04000;
  public static final int O_DIRECTORY = 0200000;
  public static final int O_NOFOLLOW = 0400000;
  public static final int O_CLOEXEC = 02000000;

  public static final int SEEK_SET = 0;
  public static final int SEEK_END = 2;
  public static final int SEEK_DATA = 3;
  public static final int SEEK_HOLE = 4;

  static final int F_GETFD = 1;
  static final int F_SETFD = 2;
  static final int F_GETFL = 3;
  static final int F_SETFL = 4;
  static final int FD_CLOEXEC = 1;

  public static final short POLLIN = 0x1;
  public static final short POLLOUT = 0x4;
  public static final short POLLERR = 0x8;
  public static final short POLLHUP = 0x10;
  public static final short POLLNVAL = 0x20;
  /** The peer of a stream or seqpacket socket shut down or closed its end. */
  public static final short POLLRDHUP = 0x2000;

  public static final int EFD_CLOEXEC = 02000000;
  public static final int EFD_NONBLOCK = 04000;

  public static final int S_IFIFO = 0010000;
  public static final int S_IFCHR = 0020000;
  public static final int S_IFBLK = 0060000;
  public static final int S_IFSOCK = 0140000;

  private static final int RLIMIT_NOFILE = 7;

  private Posix() {}

  /** open(2). O_CLOEXEC is always added: lazypull never leaks fds into children. */
  public static int open(String path, int flags, int mode) throws ErrnoException {
    while (true) {
      int fd = LibC.open(path, flags | O_CLOEXEC, mode);
      if (fd >= 0) {
        return fd;
      }
      int errno = Native.getLastError();
      if (errno != Errno.EINTR) {
        throw new ErrnoException("open", errno, path);
      }
    }
  }

  public static void close(int fd) throws ErrnoException {
    if (LibC.close(fd) < 0) {
      int errno = Native.getLastError();
      if (errno != Errno.EINTR) { // Linux closes the fd even when close reports EINTR
        throw new ErrnoException("close", errno, "fd " + fd);
      }
    }
  }

  /** close(2) for cleanup paths, where a second error must not hide the first. */
  public static void closeQuietly(int fd) {
    if (fd >= 0) {
      LibC.close(fd);
    }
  }

  public static int dup(int fd) throws ErrnoException {
    int nfd = LibC.dup(fd);
    if (nfd < 0) {
      throw new ErrnoException("dup", Native.getLastError(), "fd " + fd);
    }
    setCloexec(nfd);
    return nfd;
  }

  /** Sets FD_CLOEXEC: the kernel installs cachefiles anon fds and SCM_RIGHTS fds without it. */
  public static void setCloexec(int fd) throws ErrnoException {
    if (LibC.fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      throw new ErrnoException("fcntl(F_SETFD)", Native.getLastError(), "fd " + fd);
    }
  }

  public static void setNonBlocking(int fd, boolean nonBlocking) throws ErrnoException {
    int flags = LibC.fcntl(fd, F_GETFL, 0);
    if (flags < 0) {
      throw new ErrnoException("fcntl(F_GETFL)", Native.getLastError(), "fd " + fd);
    }
    int want = nonBlocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (want != flags && LibC.fcntl(fd, F_SETFL, want) < 0) {
      throw new ErrnoException("fcntl(F_SETFL)", Native.getLastError(), "fd " + fd);
    }
  }

  /** True if the fd number refers to an open file description. */
  public static boolean isOpen(int fd) {
    return fd >= 0 && LibC.fcntl(fd, F_GETFD, 0) >= 0;
  }

  /** read(2) into {@code dst} from its position; returns bytes read, 0 at EOF. */
  public static int read(int fd, ByteBuffer dst) throws ErrnoException {
    return transfer("read", fd, dst, -1, false);
  }

  /** write(2) from {@code src}'s position; returns bytes written. */
  public static int write(int fd, ByteBuffer src) throws ErrnoException {
    return transfer("write", fd, src, -1, true);
  }

  /** pread(2) into {@code dst} from its position; returns bytes read, 0 at EOF. */
  public static int pread(int fd, ByteBuffer dst, long offset) throws ErrnoException {
    return transfer("pread", fd, dst, offset, false);
  }

  /** pwrite(2) from {@code src}'s position; returns bytes written. */
  public static int pwrite(int fd, ByteBuffer src, long offset) throws ErrnoException {
    return transfer("pwrite", fd, src, offset, true);
  }

  /** pwrite(2) until the whole remaining buffer is written. */
  public static void pwriteFully(int fd, ByteBuffer src, long offset) throws ErrnoException {
    while (src.hasRemaining()) {
      int n = pwrite(fd, src, offset);
      if (n == 0) {
        throw new ErrnoException("pwrite", Errno.EIO, "fd " + fd + " wrote 0 bytes");
      }
      offset += n;
    }
  }

  /**
   * pwrite(2) of {@code src}'s remaining bytes, leaving its position alone, and returns the
   * count the call reported, which may exceed what was asked: cachefiles anon fds before Linux
   * 6.13 (6.12.2) report the block-rounded length of a direct write. Direct buffers only.
   */
  public static long pwriteReported(int fd, ByteBuffer src, long offset) throws ErrnoException {
    if (!src.isDirect()) {
      throw new IllegalArgumentException("pwriteReported needs a direct buffer");
    }
    int len = src.remaining();
    Pointer p = Native.getDirectBufferPointer(src).share(src.position());
    while (true) {
      long n = LibC.pwrite(fd, p, len, offset);
      if (n >= 0) {
        return n;
      }
      int errno = Native.getLastError();
      if (errno != Errno.EINTR) {
        throw new ErrnoException("pwrite", errno, "fd " + fd + " @" + offset + " len " + len);
      }
    }
  }

  private static int transfer(String call, int fd, ByteBuffer buf, long offset, boolean out)
      throws ErrnoException {
    int len = buf.remaining();
    if (len == 0) {
      return 0;
    }
    Pointer p;
    Memory staging = null;
    if (buf.isDirect()) {
      p = Native.getDirectBufferPointer(buf).share(buf.position());
    } else {
      staging = new Memory(len);
      p = staging;
      if (out) {
        byte[] tmp = new byte[len];
        buf.duplicate().get(tmp);
        staging.write(0, tmp, 0, len);
      }
    }
    try {
      long n;
      while (true) {
        if (offset < 0) {
          n = out ? LibC.write(fd, p, len) : LibC.read(fd, p, len);
        } else {
          n = out ? LibC.pwrite(fd, p, len, offset) : LibC.pread(fd, p, len, offset);
        }
        if (n >= 0) {
          break;
        }
        int errno = Native.getLastError();
        if (errno != Errno.EINTR) {
          throw new ErrnoException(call, errno, "fd " + fd + (offset < 0 ? "" : " @" + offset) + " len " + len);
        }
      }
      if (staging != null && !out && n > 0) {
        byte[] tmp = new byte[(int) n];
        staging.read(0, tmp, 0, (int) n);
        buf.duplicate().put(tmp);
      }
      buf.position(buf.position() + (int) n);
      return (int) n;
    } finally {
      if (staging != null) {
        staging.close();
      }
    }
  }

  public static long lseek(int fd, long offset, int whence) throws ErrnoException {
    long r = LibC.lseek(fd, offset, whence);
    if (r < 0) {
      throw new ErrnoException("lseek", Native.getLastError(), "fd " + fd + " @" + offset);
    }
    return r;
  }

  /** SEEK_DATA: the first data offset at or after {@code offset}, or -1 if none (ENXIO). */
  public static long seekData(int fd, long offset) throws ErrnoException {
    return seekOrEnd(fd, offset, SEEK_DATA);
  }

  /** SEEK_HOLE: the first hole at or after {@code offset} (EOF counts), or -1 past EOF (ENXIO). */
  public static long seekHole(int fd, long offset) throws ErrnoException {
    return seekOrEnd(fd, offset, SEEK_HOLE);
  }

  private static long seekOrEnd(int fd, long offset, int whence) throws ErrnoException {
    long r = LibC.lseek(fd, offset, whence);
    if (r >= 0) {
      return r;
    }
    int errno = Native.getLastError();
    if (errno == Errno.ENXIO) {
      return -1;
    }
    throw new ErrnoException(whence == SEEK_DATA ? "lseek(SEEK_DATA)" : "lseek(SEEK_HOLE)", errno,
        "fd " + fd + " @" + offset);
  }

  public static void ftruncate(int fd, long length) throws ErrnoException {
    if (LibC.ftruncate(fd, length) < 0) {
      throw new ErrnoException("ftruncate", Native.getLastError(), "fd " + fd + " to " + length);
    }
  }

  /**
   * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): [offset, offset+length) becomes a
   * hole (SEEK_HOLE finds it, reads give zeros, its blocks are freed); the size stays. Whole
   * blocks are freed; partial ones are zeroed.
   */
  public static void punchHole(int fd, long offset, long length) throws ErrnoException {
    if (LibC.fallocate(fd, 0x02 /* PUNCH_HOLE */ | 0x01 /* KEEP_SIZE */, offset, length) < 0) {
      throw new ErrnoException("fallocate(PUNCH_HOLE)", Native.getLastError(), "fd " + fd + " [" + offset
          + ", +" + length + ")");
    }
  }

  public static void fsync(int fd) throws ErrnoException {
    if (LibC.fsync(fd) < 0) {
      throw new ErrnoException("fsync", Native.getLastError(), "fd " + fd);
    }
  }

  /** ioctl(2) with an integer argument passed by value; returns the call's result. */
  public static int ioctl(int fd, long request, long arg) throws ErrnoException {
    int r = LibC.ioctl(fd, new NativeLong(request), new NativeLong(arg));
    if (r < 0) {
      throw new ErrnoException(String.format("ioctl(0x%x)", request), Native.getLastError(), "fd " + fd);
    }
    return r;
  }

  /**
   * poll(2) on several fds. {@code events[i]} is what to wait for on {@code fds[i]}; returns
   * the revents, one per fd (all zero on timeout). EINTR returns all zeros too.
   */
  public static short[] poll(int[] fds, short[] events, int timeoutMillis) throws ErrnoException {
    try (Memory m = new Memory(8L * fds.length)) {
      for (int i = 0; i < fds.length; i++) {
        m.setInt(8L * i, fds[i]);
        m.setShort(8L * i + 4, events[i]);
        m.setShort(8L * i + 6, (short) 0);
      }
      int r = LibC.poll(m, fds.length, timeoutMillis);
      short[] revents = new short[fds.length];
      if (r < 0) {
        int errno = Native.getLastError();
        if (errno == Errno.EINTR) {
          return revents;
        }
        throw new ErrnoException("poll", errno);
      }
      for (int i = 0; i < fds.length; i++) {
        revents[i] = m.getShort(8L * i + 6);
      }
      return revents;
    }
  }

  public static int eventfd(int initval, int flags) throws ErrnoException {
    int fd = LibC.eventfd(initval, flags | EFD_CLOEXEC);
    if (fd < 0) {
      throw new ErrnoException("eventfd", Native.getLastError());
    }
    return fd;
  }

  /** mknod(2): fifos, sockets and device nodes (tests build trees with every file type). */
  public static void mknod(String path, int mode, int major, int minor) throws ErrnoException {
    long dev = ((long) (major & 0xfffff000) << 32) | ((major & 0xfffL) << 8)
        | ((long) (minor & 0xffffff00) << 12) | (minor & 0xffL);
    if (LibC.mknod(path, mode, dev) < 0) {
      throw new ErrnoException("mknod", Native.getLastError(), path);
    }
  }

  /** What identifies a file: its device and inode numbers (the device as major:minor). */
  public record FileId(int devMajor, int devMinor, long ino) {
    @Override
    public String toString() {
      return devMajor + ":" + devMinor + "/" + ino;
    }
  }

  private static final int AT_EMPTY_PATH = 0x1000;
  private static final int STATX_INO = 0x100;
  /** "": statx's path with AT_EMPTY_PATH. */
  private static final Memory EMPTY_PATH = new Memory(1);
  /** struct statx (256 bytes), one per thread: the fanotify relay asks once per event. */
  private static final ThreadLocal<Memory> STATX_BUFFER = ThreadLocal.withInitial(() -> new Memory(256));

  static {
    EMPTY_PATH.setByte(0, (byte) 0);
  }

  /**
   * The device and inode of an open file (statx with AT_EMPTY_PATH: the file itself, whatever
   * path it has or had).
   */
  public static FileId fileId(int fd) throws ErrnoException {
    // No allocation per call: a Memory (and its cleaner) and the path's C string cost more than
    // the system call itself.
    Memory m = STATX_BUFFER.get();
    if (LibC.statx(fd, EMPTY_PATH, AT_EMPTY_PATH, STATX_INO, m) < 0) {
      throw new ErrnoException("statx", Native.getLastError(), "fd " + fd);
    }
    // struct statx: stx_ino @32, stx_dev_major @136, stx_dev_minor @140
    return new FileId(m.getInt(136), m.getInt(140), m.getLong(32));
  }

  public static void chmod(String path, int mode) throws ErrnoException {
    if (LibC.chmod(path, mode) < 0) {
      throw new ErrnoException("chmod", Native.getLastError(), path);
    }
  }

  /** The names of a file's extended attributes (not following a symlink); empty if none. */
  public static List<String> listXattrs(String path) throws ErrnoException {
    while (true) {
      long size = LibC.llistxattr(path, null, 0);
      if (size < 0) {
        int errno = Native.getLastError();
        if (errno == Errno.EOPNOTSUPP) {
          return List.of();
        }
        throw new ErrnoException("llistxattr", errno, path);
      }
      List<String> names = new ArrayList<>();
      if (size == 0) {
        return names;
      }
      try (Memory m = new Memory(size)) {
        long n = LibC.llistxattr(path, m, size);
        if (n < 0) {
          int errno = Native.getLastError();
          if (errno == Errno.ERANGE) {
            continue; // grew between the two calls
          }
          throw new ErrnoException("llistxattr", errno, path);
        }
        byte[] all = m.getByteArray(0, (int) n);
        int start = 0;
        for (int i = 0; i < n; i++) {
          if (all[i] == 0) {
            if (i > start) {
              names.add(new String(all, start, i - start, StandardCharsets.UTF_8));
            }
            start = i + 1;
          }
        }
        return names;
      }
    }
  }

  /** The value of an extended attribute (not following a symlink), or null if absent. */
  public static byte[] getXattr(String path, String name) throws ErrnoException {
    while (true) {
      long size = LibC.lgetxattr(path, name, null, 0);
      if (size < 0) {
        int errno = Native.getLastError();
        if (errno == Errno.ENODATA) {
          return null;
        }
        throw new ErrnoException("lgetxattr", errno, path + " " + name);
      }
      if (size == 0) {
        return new byte[0];
      }
      try (Memory m = new Memory(size)) {
        long n = LibC.lgetxattr(path, name, m, size);
        if (n < 0) {
          int errno = Native.getLastError();
          if (errno == Errno.ERANGE) {
            continue;
          }
          if (errno == Errno.ENODATA) {
            return null;
          }
          throw new ErrnoException("lgetxattr", errno, path + " " + name);
        }
        return m.getByteArray(0, (int) n);
      }
    }
  }

  /** Sets an extended attribute (not following a symlink). */
  public static void setXattr(String path, String name, byte[] value) throws ErrnoException {
    try (Memory m = new Memory(Math.max(1, value.length))) {
      if (value.length > 0) {
        m.write(0, value, 0, value.length);
      }
      if (LibC.lsetxattr(path, name, m, value.length, 0) < 0) {
        throw new ErrnoException("lsetxattr", Native.getLastError(), path + " " + name);
      }
    }
  }

  /** The value of an extended attribute of an open file, or null if absent. */
  public static byte[] fgetXattr(int fd, String name) throws ErrnoException {
    try (Memory m = new Memory(65536)) {
      long n = LibC.fgetxattr(fd, name, m, m.size());
      if (n < 0) {
        int errno = Native.getLastError();
        if (errno == Errno.ENODATA) {
          return null;
        }
        throw new ErrnoException("fgetxattr", errno, "fd " + fd + " " + name);
      }
      return m.getByteArray(0, (int) n);
    }
  }

  public static void fsetXattr(int fd, String name, byte[] value) throws ErrnoException {
    try (Memory m = new Memory(Math.max(1, value.length))) {
      if (value.length > 0) {
        m.write(0, value, 0, value.length);
      }
      if (LibC.fsetxattr(fd, name, m, value.length, 0) < 0) {
        throw new ErrnoException("fsetxattr", Native.getLastError(), "fd " + fd + " " + name);
      }
    }
  }

  /**
   * Raises the soft RLIMIT_NOFILE to the hard limit: every cachefiles object costs the daemon
   * an fd, and running out fails OPENs with EMFILE. Returns the new soft limit.
   */
  public static long raiseNoFileLimit() throws ErrnoException {
    try (Memory m = new Memory(16)) {
      if (LibC.getrlimit(RLIMIT_NOFILE, m) < 0) {
        throw new ErrnoException("getrlimit", Native.getLastError());
      }
      long hard = m.getLong(8);
      if (m.getLong(0) < hard) {
        m.setLong(0, hard);
        if (LibC.setrlimit(RLIMIT_NOFILE, m) < 0) {
          throw new ErrnoException("setrlimit", Native.getLastError());
        }
      }
      return hard;
    }
  }

  /** The soft RLIMIT_NOFILE: every fd number this process can have is below it. */
  public static long noFileLimit() throws ErrnoException {
    try (Memory m = new Memory(16)) {
      if (LibC.getrlimit(RLIMIT_NOFILE, m) < 0) {
        throw new ErrnoException("getrlimit", Native.getLastError());
      }
      return m.getLong(0);
    }
  }

  private static final int F_SETLEASE = 1024;
  private static final int F_WRLCK = 1;
  private static final int F_UNLCK = 2;
  private static volatile boolean leaseSignalIgnored;

  /**
   * True if the file of {@code fd} (which must be open for writing) is open anywhere else: by
   * any process, or by the kernel itself, such as a file-backed EROFS mount, also a lazily
   * detached one, which no listing in /proc shows. The kernel grants a write lease only on a
   * file nobody else has open (fcntl(2) F_SETLEASE); the lease is dropped at once. Another open
   * racing with it would break the lease with SIGIO, whose default action kills: this process
   * ignores SIGIO from the first call on. Other fds of the same open file (dup, SCM_RIGHTS)
   * count as this one.
   */
  public static boolean openElsewhere(int fd) throws ErrnoException {
    if (!leaseSignalIgnored) {
      sun.misc.Signal.handle(new sun.misc.Signal("IO"), sun.misc.SignalHandler.SIG_IGN);
      leaseSignalIgnored = true;
    }
    if (LibC.fcntl(fd, F_SETLEASE, F_WRLCK) == 0) {
      LibC.fcntl(fd, F_SETLEASE, F_UNLCK);
      return false;
    }
    int errno = Native.getLastError();
    if (errno == Errno.EAGAIN || errno == Errno.EBUSY) {
      return true;
    }
    throw new ErrnoException("fcntl(F_SETLEASE)", errno, "fd " + fd);
  }

  public static int getuid() {
    return LibC.getuid();
  }

  public static int getpid() {
    return LibC.getpid();
  }

  public static int getppid() {
    return LibC.getppid();
  }

  /**
   * Asks the kernel to send {@code signal} to this process when its parent (precisely: the
   * parent's thread that started it) exits, and returns false if the parent is not
   * {@code expectedParent} any more (it died before the request took effect).
   */
  public static boolean dieWithParent(int expectedParent, int signal) throws ErrnoException {
    if (LibC.prctl(1 /* PR_SET_PDEATHSIG */, signal, 0, 0, 0) < 0) {
      throw new ErrnoException("prctl(PR_SET_PDEATHSIG)", Native.getLastError());
    }
    return LibC.getppid() == expectedParent;
  }

  /** kill(2); returns false if the process does not exist (ESRCH). */
  public static boolean kill(int pid, int signal) throws ErrnoException {
    if (LibC.kill(pid, signal) < 0) {
      int errno = Native.getLastError();
      if (errno == 3 /* ESRCH */) {
        return false;
      }
      throw new ErrnoException("kill", errno, "pid " + pid);
    }
    return true;
  }
}
