package io.lazypull.sys;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.io.Closeable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * An AF_UNIX socket on a raw fd, with file-descriptor passing (SCM_RIGHTS) and peer
 * credentials (SO_PEERCRED), which Java's own channels cannot do.
 *
 * <p>Datagrams of a {@link Type#SEQPACKET} socket keep their boundaries, so one receive returns
 * exactly one message, as a read of /dev/cachefiles does. Received fds are close-on-exec.
 *
 * <p>Closing: {@link #close()} shuts the socket down first, which wakes a thread blocked in
 * {@link #receive} or {@link #accept} (a plain close(2) would not). The fd number itself is
 * freed only once no thread is inside a call on it: freed at once, the number could be reused
 * by the next socket this process opens, and a reader thread that was about to call recvmsg
 * on the old socket would read (steal) the new socket's messages. Java's own channels guard
 * their fds the same way.
 */
public final class UnixSocket implements Closeable {
  /** Socket types (SOCK_STREAM, SOCK_SEQPACKET). */
  public enum Type {
    STREAM(1),
    DGRAM(2),
    SEQPACKET(5);

    final int value;

    Type(int value) {
      this.value = value;
    }
  }

  private static final int AF_UNIX = 1;
  private static final int SOCK_CLOEXEC = 02000000;
  private static final int SOL_SOCKET = 1;
  private static final int SO_PEERCRED = 17;
  private static final int SCM_RIGHTS = 1;
  private static final int MSG_DONTWAIT = 0x40;
  private static final int MSG_TRUNC = 0x20;
  private static final int MSG_CTRUNC = 0x8;
  private static final int MSG_NOSIGNAL = 0x4000;
  private static final int MSG_CMSG_CLOEXEC = 0x40000000;
  private static final int SHUT_RDWR = 2;
  private static final int SUN_PATH_MAX = 108;
  /** The most fds one message carries; the kernel's limit is 253 (SCM_MAX_FD). */
  public static final int MAX_FDS = 16;

  private final int fd;
  private final Type type;
  private final Object state = new Object();
  // guarded by state
  private boolean closed;
  private int users; // threads inside a syscall on fd
  private boolean fdClosed;

  private UnixSocket(int fd, Type type) {
    this.fd = fd;
    this.type = type;
  }

  /** Wraps an fd that is already a connected AF_UNIX socket (received, inherited, dup'ed). */
  public static UnixSocket adopt(int fd, Type type) {
    return new UnixSocket(fd, type);
  }

  /** Binds and listens on {@code path} (which must not exist), then sets its mode. */
  public static UnixSocket listen(Path path, Type type, int mode, int backlog) throws ErrnoException {
    int fd = socket(type);
    try (Memory addr = sockaddr(path)) {
      if (LibC.bind(fd, addr, (int) addr.size()) < 0) {
        throw new ErrnoException("bind", Native.getLastError(), path.toString());
      }
      // chmod after bind: the window is harmless because nobody can connect before listen().
      Posix.chmod(path.toString(), mode);
      if (LibC.listen(fd, backlog) < 0) {
        throw new ErrnoException("listen", Native.getLastError(), path.toString());
      }
      return new UnixSocket(fd, type);
    } catch (ErrnoException | RuntimeException e) {
      Posix.closeQuietly(fd);
      throw e;
    }
  }

  /** Binds a datagram socket to {@code path} (which must not exist) to receive on it. */
  public static UnixSocket bindDatagram(Path path, int mode) throws ErrnoException {
    int fd = socket(Type.DGRAM);
    try (Memory addr = sockaddr(path)) {
      if (LibC.bind(fd, addr, (int) addr.size()) < 0) {
        throw new ErrnoException("bind", Native.getLastError(), path.toString());
      }
      Posix.chmod(path.toString(), mode);
      return new UnixSocket(fd, Type.DGRAM);
    } catch (ErrnoException | RuntimeException e) {
      Posix.closeQuietly(fd);
      throw e;
    }
  }

  /** Connects to the socket at {@code path}. */
  public static UnixSocket connect(Path path, Type type) throws ErrnoException {
    int fd = socket(type);
    try (Memory addr = sockaddr(path)) {
      while (LibC.connect(fd, addr, (int) addr.size()) < 0) {
        int errno = Native.getLastError();
        if (errno != Errno.EINTR) {
          throw new ErrnoException("connect", errno, path.toString());
        }
      }
      return new UnixSocket(fd, type);
    } catch (ErrnoException | RuntimeException e) {
      Posix.closeQuietly(fd);
      throw e;
    }
  }

  /** socketpair(2): two connected sockets. */
  public static UnixSocket[] pair(Type type) throws ErrnoException {
    int[] sv = new int[2];
    if (LibC.socketpair(AF_UNIX, type.value | SOCK_CLOEXEC, 0, sv) < 0) {
      throw new ErrnoException("socketpair", Native.getLastError());
    }
    return new UnixSocket[] {new UnixSocket(sv[0], type), new UnixSocket(sv[1], type)};
  }

  /** Blocks until a peer connects; returns null once this socket has been closed. */
  public UnixSocket accept() throws ErrnoException {
    while (true) {
      synchronized (state) {
        if (closed) {
          return null;
        }
        users++;
      }
      int c;
      int errno;
      try {
        c = LibC.accept4(fd, null, null, SOCK_CLOEXEC);
        errno = c < 0 ? Native.getLastError() : 0;
      } finally {
        leave();
      }
      if (c >= 0) {
        return new UnixSocket(c, type);
      }
      if (isClosed()) {
        return null;
      }
      if (errno != Errno.EINTR && errno != 103 /* ECONNABORTED */) {
        throw new ErrnoException("accept", errno, "fd " + fd);
      }
    }
  }

  /** Marks a call on fd as started; fails with EBADF once the socket is closed. */
  private void enter(String op) throws ErrnoException {
    synchronized (state) {
      if (closed) {
        throw new ErrnoException(op, Errno.EBADF, "socket fd " + fd + " is closed");
      }
      users++;
    }
  }

  /** Marks a call on fd as ended; the last one out after a close frees the fd number. */
  private void leave() {
    synchronized (state) {
      users--;
      closeFdIfUnusedLocked();
    }
  }

  private void closeFdIfUnusedLocked() {
    if (closed && users == 0 && !fdClosed) {
      fdClosed = true;
      Posix.closeQuietly(fd);
    }
  }

  public int fd() {
    return fd;
  }

  public Type type() {
    return type;
  }

  public boolean isClosed() {
    synchronized (state) {
      return closed;
    }
  }

  /**
   * Sends {@code data} (from its position) with {@code fds} attached. A SEQPACKET send is one
   * datagram, all or nothing; a STREAM send may be partial (the count is returned). The fds stay
   * open here: the receiver gets its own copies.
   */
  public int send(ByteBuffer data, int... fds) throws ErrnoException {
    return sendmsg(data, fds, 0);
  }

  /** Like {@link #send} but fails with EAGAIN instead of blocking when the buffer is full. */
  public int sendNonBlocking(ByteBuffer data, int... fds) throws ErrnoException {
    return sendmsg(data, fds, MSG_DONTWAIT);
  }

  /** A STREAM send of every remaining byte; the fds go with the first chunk. */
  public void sendFully(ByteBuffer data, int... fds) throws ErrnoException {
    int[] pending = fds;
    while (data.hasRemaining()) {
      send(data, pending);
      pending = new int[0];
    }
  }

  private int sendmsg(ByteBuffer data, int[] fds, int flags) throws ErrnoException {
    if (fds.length > MAX_FDS) {
      throw new IllegalArgumentException(fds.length + " fds in one message, at most " + MAX_FDS);
    }
    int len = data.remaining();
    if (len == 0) {
      throw new IllegalArgumentException("empty message: a zero-length read means EOF to the peer");
    }
    int ctlSpace = fds.length == 0 ? 0 : cmsgSpace(fds.length);
    try (Memory payload = new Memory(len);
        Memory iov = new Memory(16);
        Memory msg = new Memory(56);
        Memory ctl = new Memory(Math.max(ctlSpace, 8))) {
      byte[] bytes = new byte[len];
      data.duplicate().get(bytes);
      payload.write(0, bytes, 0, len);
      iov.setPointer(0, payload);
      iov.setLong(8, len);
      msg.clear();
      msg.setPointer(16, iov);
      msg.setLong(24, 1);
      if (fds.length > 0) {
        ctl.clear();
        ctl.setLong(0, 16 + 4L * fds.length);
        ctl.setInt(8, SOL_SOCKET);
        ctl.setInt(12, SCM_RIGHTS);
        for (int i = 0; i < fds.length; i++) {
          ctl.setInt(16 + 4L * i, fds[i]);
        }
        msg.setPointer(32, ctl);
        msg.setLong(40, ctlSpace);
      }
      while (true) {
        long n;
        int errno;
        enter("sendmsg");
        try {
          n = LibC.sendmsg(fd, msg, flags | MSG_NOSIGNAL);
          errno = n < 0 ? Native.getLastError() : 0;
        } finally {
          leave();
        }
        if (n >= 0) {
          data.position(data.position() + (int) n);
          return (int) n;
        }
        if (errno != Errno.EINTR) {
          throw new ErrnoException("sendmsg", errno, "fd " + fd);
        }
      }
    }
  }

  /** What one receive delivered: the byte count (0 = the peer closed) and the fds, if any. */
  public record Received(int bytes, int[] fds) {
    public boolean eof() {
      return bytes == 0 && fds.length == 0;
    }

    /** Closes every received fd (for messages that are dropped). */
    public void closeFds() {
      for (int f : fds) {
        Posix.closeQuietly(f);
      }
    }
  }

  /**
   * Receives into {@code dst} (from its position; the position advances) and collects up to
   * {@link #MAX_FDS} passed fds. A SEQPACKET datagram larger than {@code dst} is an EMSGSIZE
   * error (its fds are closed); so is a control message the kernel had to truncate.
   */
  public Received receive(ByteBuffer dst) throws ErrnoException {
    return recvmsg(dst, 0);
  }

  /** Like {@link #receive} but returns null instead of blocking when nothing is queued. */
  public Received receiveNonBlocking(ByteBuffer dst) throws ErrnoException {
    return recvmsg(dst, MSG_DONTWAIT);
  }

  private Received recvmsg(ByteBuffer dst, int flags) throws ErrnoException {
    int cap = dst.remaining();
    int ctlSpace = cmsgSpace(MAX_FDS);
    try (Memory payload = new Memory(Math.max(cap, 1));
        Memory iov = new Memory(16);
        Memory msg = new Memory(56);
        Memory ctl = new Memory(ctlSpace)) {
      iov.setPointer(0, payload);
      iov.setLong(8, cap);
      msg.clear();
      ctl.clear();
      msg.setPointer(16, iov);
      msg.setLong(24, 1);
      msg.setPointer(32, ctl);
      msg.setLong(40, ctlSpace);
      long n;
      while (true) {
        int errno;
        enter("recvmsg");
        try {
          // MSG_TRUNC in the flags argument makes a SEQPACKET recv return the real datagram size.
          n = LibC.recvmsg(fd, msg, flags | MSG_CMSG_CLOEXEC | (type == Type.SEQPACKET ? MSG_TRUNC : 0));
          errno = n < 0 ? Native.getLastError() : 0;
        } finally {
          leave();
        }
        if (n >= 0) {
          break;
        }
        if (errno == Errno.EAGAIN && (flags & MSG_DONTWAIT) != 0) {
          return null;
        }
        if (errno != Errno.EINTR) {
          throw new ErrnoException("recvmsg", errno, "fd " + fd);
        }
      }
      int[] fds = parseRights(ctl, msg.getLong(40));
      int msgFlags = msg.getInt(48);
      if ((msgFlags & MSG_CTRUNC) != 0) {
        closeAll(fds);
        throw new ErrnoException("recvmsg", Errno.EMSGSIZE, "fd " + fd + ": passed fds truncated");
      }
      if (n > cap || (msgFlags & MSG_TRUNC) != 0) {
        closeAll(fds);
        throw new ErrnoException("recvmsg", Errno.EMSGSIZE, "fd " + fd + ": message of " + n
            + " bytes, buffer " + cap);
      }
      if (n > 0) {
        byte[] tmp = payload.getByteArray(0, (int) n);
        dst.put(tmp);
      }
      return new Received((int) n, fds);
    }
  }

  private static int[] parseRights(Pointer ctl, long ctlLen) {
    int[] out = new int[0];
    long off = 0;
    while (off + 16 <= ctlLen) {
      long len = ctl.getLong(off);
      int level = ctl.getInt(off + 8);
      int kind = ctl.getInt(off + 12);
      if (len < 16) {
        break;
      }
      if (level == SOL_SOCKET && kind == SCM_RIGHTS) {
        int count = (int) ((len - 16) / 4);
        int[] more = new int[out.length + count];
        System.arraycopy(out, 0, more, 0, out.length);
        for (int i = 0; i < count; i++) {
          more[out.length + i] = ctl.getInt(off + 16 + 4L * i);
        }
        out = more;
      }
      off += (len + 7) & ~7L;
    }
    return out;
  }

  private static void closeAll(int[] fds) {
    for (int f : fds) {
      Posix.closeQuietly(f);
    }
  }

  /** The peer's credentials as the kernel recorded them at connect time (SO_PEERCRED). */
  public record PeerCredentials(int pid, int uid, int gid) {}

  public PeerCredentials peerCredentials() throws ErrnoException {
    enter("getsockopt(SO_PEERCRED)");
    try (Memory cred = new Memory(12); Memory len = new Memory(4)) {
      len.setInt(0, 12);
      if (LibC.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) < 0) {
        throw new ErrnoException("getsockopt(SO_PEERCRED)", Native.getLastError(), "fd " + fd);
      }
      return new PeerCredentials(cred.getInt(0), cred.getInt(4), cred.getInt(8));
    } finally {
      leave();
    }
  }

  /** Wakes blocked receivers (they see EOF) without releasing the fd number yet. */
  public void shutdown() {
    synchronized (state) {
      if (!closed) {
        LibC.shutdown(fd, SHUT_RDWR);
      }
    }
  }

  /**
   * Closes only this process's fd, without shutdown(2): copies of the socket held elsewhere
   * (a holder, another daemon) keep the connection alive. Use this to let go of a shared
   * socket; {@link #close()} would tear the connection down for every holder.
   */
  public void release() {
    synchronized (state) {
      if (!closed) {
        closed = true;
        closeFdIfUnusedLocked();
      }
    }
  }

  /** Shuts the socket down (waking blocked threads, ending the connection for every copy) and closes it. */
  @Override
  public void close() {
    synchronized (state) {
      if (!closed) {
        closed = true;
        LibC.shutdown(fd, SHUT_RDWR);
        closeFdIfUnusedLocked();
      }
    }
  }

  private static int socket(Type type) throws ErrnoException {
    int fd = LibC.socket(AF_UNIX, type.value | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      throw new ErrnoException("socket", Native.getLastError());
    }
    return fd;
  }

  /**
   * A sockaddr_un for {@code path}. A path starting with {@code @} names a socket in the
   * abstract namespace (as systemd's $NOTIFY_SOCKET may): the {@code @} becomes a NUL byte and
   * the address length covers exactly the name.
   */
  private static Memory sockaddr(Path path) throws ErrnoException {
    byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
    if (p.length >= SUN_PATH_MAX) {
      throw new ErrnoException("bind/connect", Errno.ENAMETOOLONG,
          path + " is " + p.length + " bytes; unix socket paths must be shorter than " + SUN_PATH_MAX);
    }
    boolean abstractName = p.length > 0 && p[0] == '@';
    Memory addr = new Memory(2 + p.length + (abstractName ? 0 : 1));
    addr.clear();
    addr.setShort(0, (short) AF_UNIX);
    addr.write(2, p, 0, p.length);
    if (abstractName) {
      addr.setByte(2, (byte) 0);
    }
    return addr;
  }

  private static int cmsgSpace(int nfds) {
    return 16 + ((4 * nfds + 7) & ~7);
  }

  @Override
  public String toString() {
    return "UnixSocket{fd=" + fd + ", " + type + (isClosed() ? ", closed" : "") + "}";
  }
}
