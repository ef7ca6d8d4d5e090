package io.lazypull.daemon.shim;

import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.protocol.DeviceCommand;
import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.ProtocolException;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Threads: any number of callers (the request loop, pool threads answering OPENs) send
 * datagrams; one receiver thread reads the device socket and hands each reply to the caller
 * whose tag it carries, turns wake-ups into "readable" for awaitReadable, and notices the
 * shim's death (EOF). Every caller waits on the one monitor, `lock`.
 *
 *   caller:    tag = next; calls[tag] = c; send(tag, kind, payload); wait until c is done
 *   receiver:  poll(socket, stopFd); recv; tag 0 -> wake-up (or refusal); else calls.remove(tag)
 *
 * A reply whose tag is not in `calls` is stale: it answers a datagram an earlier daemon sent
 * on this same socket before it died (adopt() drains what is queued; a reply still in the
 * shim's hands then arrives late). Its fds are closed, which is what the kernel does to the
 * anon fd of an OPEN whose reader died: the object goes CLOSE, restore re-delivers the OPEN.
 *
 * The device socket may be shared with a holder (it keeps a dup so the device outlives this
 * process). So this class never shuts it down: close() only closes its own fd (release()), and
 * the receiver is stopped through an eventfd rather than by shutting the socket down.
 */

/**
 * The daemon's end of the fuse-shim: a {@link Device} over the shim's device socket
 * (docs/design/shim-protocol.md). {@link #connect} is a fresh daemon's {@code open} and
 * {@code bind ondemand}; {@link #adopt} takes over a device socket a holder kept across a
 * crash (then write {@link #restore} once, and read).
 */
public final class ShimDevice implements Device {
  private static final Logger log = LoggerFactory.getLogger(ShimDevice.class);
  private static final long LOG_EVERY_MILLIS = 30_000;

  private final UnixSocket socket;
  private final String description;
  private final int stopFd;
  private final Thread receiver;
  private final int drained;
  private final AtomicInteger tags = new AtomicInteger(ThreadLocalRandom.current().nextInt(1, Integer.MAX_VALUE));

  private final Object lock = new Object();
  private final Map<Integer, Call> calls = new HashMap<>(); // guarded by lock
  private boolean readable = true; // like poll(2) before the first read: just try
  private boolean closed;
  private String deadReason; // non-null once the shim is gone
  private int refusedErrno;

  /** One datagram waiting for its reply. */
  private static final class Call {
    ShimWire.Reply reply;
    int[] fds;
  }

  private ShimDevice(UnixSocket socket, String description, int drained) throws ErrnoException {
    this.socket = socket;
    this.description = description;
    this.drained = drained;
    this.stopFd = Posix.eventfd(0, Posix.EFD_NONBLOCK);
    this.receiver = new Thread(this::receive, "shim-device-receiver");
    this.receiver.setDaemon(true);
    this.receiver.start();
  }

  /**
   * Connects to the shim listening on {@code socket} and writes {@code bind ondemand}: a new
   * device (the kernel's open of /dev/cachefiles plus bind).
   *
   * @throws ErrnoException ECONNREFUSED/ENOENT if no shim listens there; EBUSY if the shim
   *     already has a device (another daemon, or a holder keeping a crashed daemon's device:
   *     then adopt that one instead)
   */
  public static ShimDevice connect(Path socket) throws IOException {
    UnixSocket s;
    try {
      s = UnixSocket.connect(socket, UnixSocket.Type.SEQPACKET);
    } catch (ErrnoException e) {
      throw new ErrnoException("connect", e.errno(), socket + ": no fuse-shim listening there?");
    }
    ShimDevice d;
    try {
      d = new ShimDevice(s, "shim:" + socket, 0);
    } catch (ErrnoException e) {
      s.release();
      throw e;
    }
    try {
      d.write(DeviceCommand.Bind.ONDEMAND.text());
    } catch (IOException e) {
      int refused;
      synchronized (d.lock) {
        refused = d.refusedErrno;
      }
      d.close();
      if (refused != 0) {
        throw new ErrnoException("connect", refused, socket
            + ": the shim already has a device (a running daemon, or a holder keeping a crashed one's: adopt it)");
      }
      throw e;
    }
    log.info("connected to {} and bound it (on-demand)", d.description);
    return d;
  }

  /**
   * Takes over a device socket fd a holder kept (a crashed daemon's device): first drains every
   * datagram queued on it (replies to the dead daemon, closing the fds they carry), then serves.
   * Does not bind: the caller writes {@link #restore} once, then reads. Owns {@code fd} from now
   * on (closed by {@link #close}, never shut down).
   *
   * @throws DeviceDeadException if the shim is already gone
   */
  public static ShimDevice adopt(int fd) throws IOException {
    UnixSocket s = UnixSocket.adopt(fd, UnixSocket.Type.SEQPACKET);
    int n = 0;
    try {
      Posix.setCloexec(fd);
      ByteBuffer buf = ByteBuffer.allocate(ShimWire.MAX_REPLY_SIZE);
      while (true) {
        buf.clear();
        UnixSocket.Received r;
        try {
          r = s.receiveNonBlocking(buf);
        } catch (ErrnoException e) {
          if (e.errno() == Errno.EMSGSIZE) {
            n++;
            continue;
          }
          if (e.errno() == Errno.ECONNRESET) {
            continue; // reported once, ahead of what is queued; EOF follows
          }
          throw e;
        }
        if (r == null) {
          break;
        }
        if (r.eof()) {
          throw new DeviceDeadException("shim device fd " + fd + ": the shim is gone (EOF)");
        }
        r.closeFds();
        n++;
      }
    } catch (IOException | RuntimeException e) {
      s.release();
      throw e;
    }
    ShimDevice d;
    try {
      d = new ShimDevice(s, "shim:fd " + fd, n);
    } catch (ErrnoException e) {
      s.release();
      throw e;
    }
    log.info("adopted {}: drained {} stale datagram(s)", d.description, n);
    return d;
  }

  /** How many stale datagrams {@link #adopt} drained (0 for {@link #connect}). */
  public int drainedOnAdopt() {
    return drained;
  }

  // ---------------------------------------------------------------- Device

  @Override
  public boolean awaitReadable(long timeoutMillis) throws IOException {
    long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
    synchronized (lock) {
      while (true) {
        checkAlive();
        if (readable) {
          readable = false;
          return true;
        }
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
          return false;
        }
        try {
          lock.wait(left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted waiting for " + description);
        }
      }
    }
  }

  @Override
  public Request read() throws IOException {
    Call c = call(ShimWire.Request.read(nextTag()));
    int n = c.reply.result();
    if (n <= 0) {
      closeAll(c.fds);
      if (n < 0) {
        throw new ErrnoException("read", -n, description);
      }
      return null;
    }
    Message m;
    try {
      if (n != c.reply.payload().length) {
        throw new ProtocolException("READ reply says " + n + " bytes, carries " + c.reply.payload().length);
      }
      m = MessageCodec.decode(c.reply.payloadBuffer());
      if (m instanceof Message.Open && c.fds.length != ShimWire.OPEN_FD_COUNT) {
        throw new ProtocolException(m + " came with " + c.fds.length + " fds, expected 2");
      }
    } catch (ProtocolException e) {
      closeAll(c.fds);
      log.error("{}: undecodable message from the shim (its request is lost): {}", description, e.getMessage());
      throw e;
    }
    if (m instanceof Message.Open o) {
      UnixSocket anon = UnixSocket.adopt(c.fds[ShimWire.OPEN_FD_ANON], UnixSocket.Type.SEQPACKET);
      ShimAnonFd fd = new ShimAnonFd(anon, c.fds[ShimWire.OPEN_FD_CACHE_FILE], o.objectId());
      return new Request.Open(o.msgId(), o.objectId(), o.volumeKey(), o.cookieKey(), fd);
    }
    closeAll(c.fds);
    if (m instanceof Message.Read r) {
      return new Request.Read(r.msgId(), r.objectId(), r.offset(), r.length());
    }
    return new Request.Close(m.msgId(), m.objectId());
  }

  @Override
  public void copen(int msgId, long size) throws IOException {
    if (size < 0) {
      throw new IllegalArgumentException("copen size " + size + ": use copenError");
    }
    write(new DeviceCommand.Copen(msgId, size).text());
  }

  @Override
  public void copenError(int msgId, int errno) throws IOException {
    write(DeviceCommand.Copen.error(msgId, errno).text());
  }

  @Override
  public void restore() throws IOException {
    write(DeviceCommand.Restore.INSTANCE.text());
  }

  /** Writes one command, as write(2) on /dev/cachefiles; a negative result is an ErrnoException. */
  public void write(String command) throws IOException {
    Call c = call(ShimWire.Request.write(nextTag(), command));
    closeAll(c.fds);
    if (c.reply.result() < 0) {
      throw new ErrnoException("write", -c.reply.result(), "'" + command + "' to " + description);
    }
  }

  @Override
  public int fd() {
    return socket.fd();
  }

  @Override
  public String describe() {
    return description;
  }

  /** Closes this process's fd only: a holder's copy keeps the device alive. */
  @Override
  public void close() {
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
      lock.notifyAll();
    }
    try {
      Posix.write(stopFd, ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(0, 1));
    } catch (ErrnoException e) {
      log.debug("stop signal: {}", e.getMessage());
    }
    if (Thread.currentThread() != receiver) {
      try {
        receiver.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    List<Call> orphans;
    synchronized (lock) {
      orphans = new ArrayList<>(calls.values());
      calls.clear();
    }
    for (Call c : orphans) {
      closeAll(c.fds);
    }
    socket.release();
    Posix.closeQuietly(stopFd);
  }

  // ---------------------------------------------------------------- calls

  private int nextTag() {
    while (true) {
      int t = tags.getAndIncrement();
      if (t != ShimWire.WAKEUP_TAG) {
        return t;
      }
    }
  }

  private Call call(ShimWire.Request req) throws IOException {
    Call c = new Call();
    synchronized (lock) {
      checkAlive();
      calls.put(req.tag(), c);
    }
    try {
      socket.send(req.encode());
    } catch (ErrnoException e) {
      synchronized (lock) {
        calls.remove(req.tag());
      }
      if (e.errno() == Errno.EPIPE || e.errno() == Errno.ECONNRESET || e.errno() == Errno.ENOTCONN) {
        // The shim closed the connection; a refusal may still be queued: let the receiver see it.
        awaitDeath();
        throw dead();
      }
      throw e;
    }
    long start = System.nanoTime();
    long nextLog = start + LOG_EVERY_MILLIS * 1_000_000;
    synchronized (lock) {
      while (c.reply == null) {
        if (deadReason != null || closed) {
          calls.remove(req.tag());
          throw dead();
        }
        long now = System.nanoTime();
        if (now >= nextLog) {
          log.warn("{}: still no reply to tag {} after {} s", description, Integer.toUnsignedString(req.tag()),
              (now - start) / 1_000_000_000);
          nextLog = now + LOG_EVERY_MILLIS * 1_000_000;
        }
        try {
          lock.wait(Math.max(1, (nextLog - now) / 1_000_000));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted waiting for " + description);
        }
      }
    }
    return c;
  }

  private void awaitDeath() {
    synchronized (lock) {
      long deadline = System.nanoTime() + 1_000_000_000L;
      while (deadReason == null && !closed && System.nanoTime() < deadline) {
        try {
          lock.wait(100);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
      if (deadReason == null) {
        deadReason = "the shim closed the device socket";
      }
    }
  }

  private void checkAlive() throws DeviceDeadException {
    if (deadReason != null || closed) {
      throw dead();
    }
  }

  private DeviceDeadException dead() {
    synchronized (lock) {
      if (closed && deadReason == null) {
        return new DeviceDeadException(description + ": closed");
      }
      return new DeviceDeadException(description + ": " + deadReason);
    }
  }

  // ---------------------------------------------------------------- the receiver

  private void receive() {
    ByteBuffer buf = ByteBuffer.allocate(ShimWire.MAX_REPLY_SIZE);
    int[] fds = {socket.fd(), stopFd};
    short[] events = {Posix.POLLIN, Posix.POLLIN};
    while (true) {
      short[] rev;
      try {
        rev = Posix.poll(fds, events, -1);
      } catch (ErrnoException e) {
        die("poll: " + e.getMessage());
        return;
      }
      synchronized (lock) {
        if (closed) {
          return;
        }
      }
      if (rev[0] == 0) {
        continue;
      }
      buf.clear();
      UnixSocket.Received r;
      try {
        r = socket.receiveNonBlocking(buf);
      } catch (ErrnoException e) {
        if (e.errno() == Errno.EMSGSIZE) {
          log.warn("{}: dropped an oversized datagram", description);
          continue;
        }
        if (e.errno() == Errno.ECONNRESET) {
          // The shim closed with our datagrams unread. The error is reported once, ahead of
          // what is still queued (a refusal, replies); EOF follows.
          continue;
        }
        die("recv: " + e.getMessage());
        return;
      }
      if (r == null) {
        continue;
      }
      if (r.eof()) {
        die("the shim closed the device socket");
        return;
      }
      ShimWire.Reply reply;
      try {
        reply = ShimWire.Reply.decode(buf.flip());
      } catch (ProtocolException e) {
        r.closeFds();
        log.warn("{}: {}", description, e.getMessage());
        continue;
      }
      if (reply.tag() == ShimWire.WAKEUP_TAG) {
        r.closeFds();
        if (reply.isRefusal()) {
          synchronized (lock) {
            refusedErrno = -reply.result();
          }
          die("refused by the shim: " + Errno.describe(-reply.result()));
          return;
        }
        synchronized (lock) {
          readable = true;
          lock.notifyAll();
        }
        continue;
      }
      Call c;
      synchronized (lock) {
        c = calls.remove(reply.tag());
        if (c != null) {
          c.reply = reply;
          c.fds = r.fds();
          lock.notifyAll();
        }
      }
      if (c == null) {
        log.debug("{}: dropped a stale reply (tag {} is not ours), closing {} fd(s)", description,
            Integer.toUnsignedString(reply.tag()), r.fds().length);
        r.closeFds();
      }
    }
  }

  private void die(String reason) {
    synchronized (lock) {
      if (deadReason == null) {
        deadReason = reason;
        if (!closed) {
          log.warn("{}: device dead: {}", description, reason);
        }
      }
      lock.notifyAll();
    }
  }

  private static void closeAll(int[] fds) {
    if (fds != null) {
      for (int fd : fds) {
        Posix.closeQuietly(fd);
      }
    }
  }

  @Override
  public String toString() {
    return "ShimDevice{" + description + "}";
  }
}
