package io.lazypull.shim;

import io.lazypull.protocol.DeviceCommand;
import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.ProtocolException;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.shim.ondemand.Anon;
import io.lazypull.shim.ondemand.Delivery;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * One thread owns every socket of the shim's device side:
 *
 *   poll(2) over [eventfd, listening socket, device socket, anon socket...]
 *     eventfd      a FUSE thread queued a request (send a wake-up), or close()
 *     listening    a daemon connects: the device, or EBUSY if there is one
 *     device       WRITE / READ datagrams: commands, and one message per READ
 *     anon         CREAD datagrams, and EOF when the daemon's last copy closes
 *
 * A poller rather than a thread per object: the number of objects is not bounded (one per
 * blob looked up), CREADs are tiny, and one thread makes the ordering rule below simple.
 * Ordering: the kernel runs an anon fd's release synchronously in close(2), so a daemon that
 * closes an anon fd and then writes "copen" or "restore" finds the object CLOSE already. Here
 * the EOF reaches another socket, so before each device datagram the loop polls every anon
 * socket without waiting and handles what is there (CREADs first, then EOF).
 *
 * Sends on the device socket block (replies are small and the daemon's receiver drains them)
 * except the wake-up, which is MSG_DONTWAIT: at most one is outstanding between two READ
 * datagrams, and it is dropped if the buffer is full, so the socket of a dead daemon whose
 * holder keeps it never fills up.
 */

/** The device server: the fuse-shim's end of the device socket and of every anon socket. */
final class DeviceServer implements OndemandCache.Waker, Closeable {
  private static final Logger log = LoggerFactory.getLogger(DeviceServer.class);
  /** Device datagrams handled per wake of the loop, so anon sockets are not starved. */
  private static final int DEVICE_BATCH = 64;

  private final Path socketPath;
  private final UnixSocket listener;
  private final int eventFd;
  private final Thread thread;
  private final AtomicBoolean wakeRequested = new AtomicBoolean();
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile boolean stopping;
  private volatile OndemandCache cache;

  // Owned by the loop thread.
  private UnixSocket device;
  private boolean wakeupOutstanding;
  private boolean dirSet;
  private boolean tagSet;
  private final Map<Integer, AnonEnd> anonEnds = new LinkedHashMap<>();
  private final ByteBuffer rx = ByteBuffer.allocate(ShimWire.MAX_REQUEST_SIZE);
  private final ByteBuffer anonRx = ByteBuffer.allocate(64);

  /** The shim's end of one anon socket pair. */
  private record AnonEnd(UnixSocket socket, Anon anon) {}

  private DeviceServer(Path socketPath, UnixSocket listener, int eventFd) {
    this.socketPath = socketPath;
    this.listener = listener;
    this.eventFd = eventFd;
    this.thread = new Thread(this::run, "shim-device");
    this.thread.setDaemon(true);
  }

  /**
   * Listens on {@code socketPath} (SEQPACKET, mode 0600). A stale socket file is removed only
   * if nothing answers on it. Call {@link #start} once the cache exists.
   */
  static DeviceServer listen(Path socketPath) throws IOException {
    int efd = Posix.eventfd(0, Posix.EFD_NONBLOCK);
    try {
      return new DeviceServer(socketPath, ShimSockets.listen(socketPath, 16), efd);
    } catch (IOException | RuntimeException e) {
      Posix.closeQuietly(efd);
      throw e;
    }
  }

  void start(OndemandCache cache) {
    this.cache = cache;
    thread.start();
    log.info("device socket {} listening", socketPath);
  }

  // ---------------------------------------------------------------- called by any thread

  /** The cache queued a request, a copen succeeded or a restore ran: tell the daemon. */
  @Override
  public void wakeDaemon() {
    wakeRequested.set(true);
    signal();
  }

  private void signal() {
    try {
      Posix.write(eventFd, ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(0, 1));
    } catch (ErrnoException e) {
      if (e.errno() != Errno.EAGAIN) { // the counter is saturated: a wake-up is pending anyway
        log.warn("eventfd write: {}", e.getMessage());
      }
    }
  }

  /** Stops the loop and closes every socket; removes the socket file. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    stopping = true;
    signal();
    if (thread.isAlive()) {
      try {
        thread.join(5000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (thread.isAlive()) {
      log.warn("device thread did not stop within 5 s");
    }
    if (device != null) {
      device.close();
      device = null;
    }
    for (AnonEnd e : anonEnds.values()) {
      e.socket().close();
    }
    anonEnds.clear();
    listener.close();
    Posix.closeQuietly(eventFd);
    try {
      Files.deleteIfExists(socketPath);
    } catch (IOException e) {
      log.warn("cannot remove {}: {}", socketPath, e.getMessage());
    }
  }

  // ---------------------------------------------------------------- the loop

  private void run() {
    while (!stopping) {
      List<AnonEnd> ends = new ArrayList<>(anonEnds.values());
      int[] fds = new int[3 + ends.size()];
      short[] events = new short[fds.length];
      fds[0] = eventFd;
      fds[1] = listener.fd();
      fds[2] = device == null ? -1 : device.fd();
      for (int i = 0; i < ends.size(); i++) {
        fds[3 + i] = ends.get(i).socket().fd();
      }
      java.util.Arrays.fill(events, Posix.POLLIN);
      short[] rev;
      try {
        rev = Posix.poll(fds, events, -1);
      } catch (ErrnoException e) {
        log.error("device loop: {}: stopping", e.getMessage());
        return;
      }
      try {
        if (rev[0] != 0) {
          drainEventFd();
        }
        if (stopping) {
          return;
        }
        for (int i = 0; i < ends.size(); i++) {
          if (rev[3 + i] != 0 && anonEnds.containsKey(fds[3 + i])) {
            drainAnon(ends.get(i));
          }
        }
        if (rev[1] != 0) {
          acceptConnection();
        }
        if (device != null && rev[2] != 0) {
          serveDevice();
        }
        flushWakeup();
      } catch (RuntimeException e) {
        log.error("device loop: unexpected error (continuing)", e);
      }
    }
  }

  private void drainEventFd() {
    try {
      Posix.read(eventFd, ByteBuffer.allocate(8));
    } catch (ErrnoException e) {
      // EAGAIN: already drained
    }
  }

  private void acceptConnection() {
    UnixSocket s;
    try {
      s = listener.accept();
    } catch (ErrnoException e) {
      log.warn("accept on {}: {}", socketPath, e.getMessage());
      return;
    }
    if (s == null || !ShimSockets.admit(s, socketPath)) {
      return;
    }
    String who = peer(s);
    if (device != null) {
      // The kernel's second open of /dev/cachefiles: EBUSY.
      try {
        s.sendNonBlocking(ShimWire.Reply.refusal(Errno.EBUSY).encode());
      } catch (ErrnoException e) {
        log.debug("refusal to {}: {}", who, e.getMessage());
      }
      s.close();
      log.warn("refused a second device connection from {}: EBUSY (a device is connected)", who);
      return;
    }
    device = s;
    wakeupOutstanding = false;
    dirSet = false;
    tagSet = false;
    log.info("device connected: {}", who);
  }

  private static String peer(UnixSocket s) {
    try {
      UnixSocket.PeerCredentials c = s.peerCredentials();
      return "pid " + c.pid() + " uid " + c.uid();
    } catch (ErrnoException e) {
      return "unknown peer";
    }
  }

  private void serveDevice() {
    for (int i = 0; i < DEVICE_BATCH && device != null; i++) {
      rx.clear();
      UnixSocket.Received rec;
      try {
        rec = device.receiveNonBlocking(rx);
      } catch (ErrnoException e) {
        if (e.errno() == Errno.EMSGSIZE) {
          log.warn("device: dropped an oversized datagram: {}", e.getMessage());
          continue;
        }
        deviceGone(e.getMessage());
        return;
      }
      if (rec == null) {
        return;
      }
      if (rec.eof()) {
        deviceGone("EOF");
        return;
      }
      rec.closeFds(); // the daemon passes no fds to the shim
      rx.flip();
      syncAnons();
      handleDatagram();
    }
  }

  private void handleDatagram() {
    ShimWire.Request req;
    try {
      req = ShimWire.Request.decode(rx);
    } catch (ProtocolException e) {
      log.warn("device: {}", e.getMessage());
      if (rx.remaining() >= 4) {
        reply(new ShimWire.Reply(rx.order(ByteOrder.nativeOrder()).getInt(0), -Errno.EINVAL, new byte[0]));
      }
      return;
    }
    if (req.kind() == ShimWire.KIND_READ) {
      onRead(req.tag());
    } else {
      reply(ShimWire.Reply.of(req.tag(), onWrite(req.payload())));
    }
  }

  /** A command written to the device: write(2)'s result. */
  private int onWrite(byte[] text) {
    DeviceCommand cmd;
    try {
      cmd = DeviceCommand.parse(text);
    } catch (DeviceCommand.Rejected e) {
      log.debug("device command rejected: {}", e.getMessage());
      return -e.errno();
    }
    int r;
    if (cmd instanceof DeviceCommand.Copen c) {
      r = cache.copen(c.msgId(), c.size());
    } else if (cmd instanceof DeviceCommand.Restore) {
      r = cache.restore();
    } else if (cmd instanceof DeviceCommand.Bind b) {
      if (!b.mode().equals("ondemand")) {
        log.warn("'{}': the shim only emulates on-demand mode", b.text());
        r = -Errno.EINVAL;
      } else {
        r = cache.bind();
        if (r < 0) {
          log.warn("bind ondemand: {}", Errno.describe(-r));
        }
      }
    } else if (cmd instanceof DeviceCommand.Dir) {
      r = dirSet ? -Errno.EEXIST : 0; // accepted once; the shim has its own cache dir
      dirSet = true;
    } else if (cmd instanceof DeviceCommand.Tag) {
      r = tagSet ? -Errno.EEXIST : 0;
      tagSet = true;
    } else {
      r = -Errno.EOPNOTSUPP;
    }
    return r < 0 ? r : text.length;
  }

  /** A READ datagram: one message (an OPEN with its two fds), nothing, or -errno. */
  private void onRead(int tag) {
    wakeupOutstanding = false;
    Delivery d = cache.select();
    if (d == null) {
      reply(ShimWire.Reply.of(tag, 0));
      return;
    }
    if (d.isFailure()) {
      reply(ShimWire.Reply.of(tag, -d.errno()));
      return;
    }
    ByteBuffer m = MessageCodec.encode(d.message());
    byte[] payload = new byte[m.remaining()];
    m.get(payload);
    ShimWire.Reply r = new ShimWire.Reply(tag, payload.length, payload);
    if (!(d.message() instanceof Message.Open)) {
      try {
        device.send(r.encode());
      } catch (ErrnoException e) {
        cache.deliveryFailed(d, e.errno());
        log.warn("device: cannot send {}: {}", d.message(), e.getMessage());
      }
      return;
    }
    UnixSocket[] pair;
    try {
      pair = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    } catch (ErrnoException e) {
      cache.deliveryFailed(d, e.errno());
      reply(ShimWire.Reply.of(tag, -e.errno()));
      return;
    }
    try {
      device.send(r.encode(), pair[1].fd(), d.file().fd());
    } catch (ErrnoException e) {
      pair[0].close();
      pair[1].release();
      cache.deliveryFailed(d, e.errno());
      log.warn("device: cannot send {}: {}", d.message(), e.getMessage());
      return;
    }
    pair[1].release(); // the daemon holds its own copy now: its last close is our EOF
    anonEnds.put(pair[0].fd(), new AnonEnd(pair[0], d.anon()));
  }

  private void reply(ShimWire.Reply r) {
    try {
      device.send(r.encode());
    } catch (ErrnoException e) {
      log.debug("device: reply to tag {}: {}", Integer.toUnsignedString(r.tag()), e.getMessage());
    }
  }

  private void flushWakeup() {
    if (!wakeRequested.getAndSet(false) || device == null || wakeupOutstanding) {
      return;
    }
    try {
      device.sendNonBlocking(ShimWire.Reply.WAKEUP.encode());
    } catch (ErrnoException e) {
      log.debug("wake-up dropped: {}", e.getMessage());
    }
    wakeupOutstanding = true;
  }

  private void deviceGone(String why) {
    log.warn("device socket closed ({}): the daemon and every holder let go of it", why);
    cache.deviceGone();
    device.close();
    device = null;
    wakeupOutstanding = false;
  }

  // ---------------------------------------------------------------- anon sockets

  /** Handles whatever the anon sockets hold right now (CREADs, EOFs), without waiting. */
  private void syncAnons() {
    if (anonEnds.isEmpty()) {
      return;
    }
    List<AnonEnd> ends = new ArrayList<>(anonEnds.values());
    int[] fds = new int[ends.size()];
    short[] events = new short[ends.size()];
    for (int i = 0; i < fds.length; i++) {
      fds[i] = ends.get(i).socket().fd();
      events[i] = Posix.POLLIN;
    }
    short[] rev;
    try {
      rev = Posix.poll(fds, events, 0);
    } catch (ErrnoException e) {
      log.warn("poll of anon sockets: {}", e.getMessage());
      return;
    }
    for (int i = 0; i < fds.length; i++) {
      if (rev[i] != 0) {
        drainAnon(ends.get(i));
      }
    }
  }

  private void drainAnon(AnonEnd end) {
    while (true) {
      anonRx.clear();
      UnixSocket.Received rec;
      try {
        rec = end.socket().receiveNonBlocking(anonRx);
      } catch (ErrnoException e) {
        if (e.errno() == Errno.EMSGSIZE) {
          sendResult(end, -Errno.EINVAL);
          continue;
        }
        log.warn("{}: {}", end.anon(), e.getMessage());
        closeAnon(end);
        return;
      }
      if (rec == null) {
        return;
      }
      if (rec.eof()) {
        closeAnon(end);
        return;
      }
      rec.closeFds();
      anonRx.flip();
      int result;
      try {
        result = cache.cread(end.anon(), ShimWire.decodeCread(anonRx));
      } catch (ProtocolException e) {
        result = -Errno.EINVAL; // the kernel's answer to any other ioctl
      }
      sendResult(end, result);
    }
  }

  private static void sendResult(AnonEnd end, int result) {
    try {
      end.socket().send(ShimWire.encodeResult(result));
    } catch (ErrnoException e) {
      log.debug("{}: reply: {}", end.anon(), e.getMessage());
    }
  }

  private void closeAnon(AnonEnd end) {
    cache.anonClosed(end.anon());
    anonEnds.remove(end.socket().fd());
    end.socket().close();
  }
}
