package io.lazypull.daemon.shim;

import static io.lazypull.testing.Async.async;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ShimDevice against a scripted shim on a real socket: the test plays the shim's side of the
 * wire by hand, so each rule of the daemon's side is checked on its own. ShimDevice against the
 * real shim (and FUSE, and EROFS) is tested in the cli module, which has both.
 */
class ShimDeviceTest {
  @TempDir Path tmp;
  Path sock;
  UnixSocket listener;
  UnixSocket conn; // the shim's end
  ShimDevice device;

  @BeforeEach
  void listen() throws Exception {
    sock = tmp.resolve("shim.sock");
    listener = UnixSocket.listen(sock, UnixSocket.Type.SEQPACKET, 0600, 4);
  }

  @AfterEach
  void close() {
    if (device != null) {
      device.close();
    }
    if (conn != null) {
      conn.close();
    }
    listener.close();
  }

  static Throwable failure(CompletableFuture<?> f) throws Exception {
    try {
      f.get(10, TimeUnit.SECONDS);
      throw new AssertionError("expected a failure");
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  ShimWire.Request next() throws Exception {
    ByteBuffer b = ByteBuffer.allocate(ShimWire.MAX_REQUEST_SIZE);
    UnixSocket.Received r = conn.receive(b);
    assertThat(r.eof()).isFalse();
    return ShimWire.Request.decode(b.flip());
  }

  void reply(int tag, int result, byte[] payload, int... fds) throws Exception {
    conn.send(new ShimWire.Reply(tag, result, payload).encode(), fds);
  }

  ShimDevice connected() throws Exception {
    CompletableFuture<ShimDevice> f = async(() -> ShimDevice.connect(sock));
    conn = listener.accept();
    ShimWire.Request bind = next();
    assertThat(bind.kind()).isEqualTo(ShimWire.KIND_WRITE);
    assertThat(new String(bind.payload(), StandardCharsets.US_ASCII)).isEqualTo("bind ondemand");
    assertThat(bind.tag()).isNotZero();
    reply(bind.tag(), 13, new byte[0]);
    device = f.get(10, TimeUnit.SECONDS);
    return device;
  }

  static boolean sawEof(UnixSocket s) throws Exception {
    for (int i = 0; i < 200; i++) {
      UnixSocket.Received r;
      try {
        r = s.receiveNonBlocking(ByteBuffer.allocate(64));
      } catch (ErrnoException e) {
        if (e.errno() == Errno.ECONNRESET) {
          continue;
        }
        throw e;
      }
      if (r != null && r.eof()) {
        return true;
      }
      Thread.sleep(10);
    }
    return false;
  }

  @Test
  void connect_writesBindOndemand() throws Exception {
    ShimDevice d = connected();
    assertThat(d.describe()).isEqualTo("shim:" + sock);
    assertThat(d.drainedOnAdopt()).isZero();
  }

  @Test
  void connect_refusedByABusyShim_isEbusy() throws Exception {
    CompletableFuture<ShimDevice> f = async(() -> ShimDevice.connect(sock));
    conn = listener.accept();
    conn.send(ShimWire.Reply.refusal(Errno.EBUSY).encode());
    conn.close();
    conn = null;
    assertThat(failure(f)).isInstanceOf(ErrnoException.class)
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EBUSY));
  }

  @Test
  void connect_withoutShim_failsClearly() throws Exception {
    assertThatThrownBy(() -> ShimDevice.connect(tmp.resolve("none.sock")))
        .isInstanceOf(ErrnoException.class).hasMessageContaining("no fuse-shim listening");
  }

  @Test
  void read_decodesMessages_andAnOpenCarriesItsAnonFd() throws Exception {
    ShimDevice d = connected();
    Path cacheFile = tmp.resolve("cache-file");
    int cacheFd = Posix.open(cacheFile.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    UnixSocket[] anon = UnixSocket.pair(UnixSocket.Type.SEQPACKET);

    CompletableFuture<Request> r1 = async(d::read);
    ShimWire.Request rq = next();
    assertThat(rq.kind()).isEqualTo(ShimWire.KIND_READ);
    byte[] open = bytes(new Message.Open(7, 3, "erofs,dom", "blob", -1, 0));
    reply(rq.tag(), open.length, open, anon[1].fd(), cacheFd);
    anon[1].release();
    Posix.close(cacheFd);
    Request.Open o = (Request.Open) r1.get(10, TimeUnit.SECONDS);
    assertThat(o.msgId()).isEqualTo(7);
    assertThat(o.objectId()).isEqualTo(3);
    assertThat(o.volumeKey()).isEqualTo("erofs,dom");
    assertThat(o.cookieKey()).isEqualTo("blob");

    byte[] data = new byte[4096];
    data[0] = 42;
    o.anonFd().write(8192, ByteBuffer.wrap(data));
    assertThat(Files.readAllBytes(cacheFile)[8192]).isEqualTo((byte) 42);
    assertThat(o.anonFd().seekData(0)).isEqualTo(8192);
    assertThat(o.anonFd().seekHole(8192)).isEqualTo(12288);
    assertThatThrownBy(() -> o.anonFd().write(100, ByteBuffer.wrap(data)))
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.ENOBUFS));
    assertThatThrownBy(() -> o.anonFd().write(0, ByteBuffer.wrap(new byte[100])))
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EINVAL));

    CompletableFuture<Void> done = async(() -> {
      o.anonFd().completeRead(9);
      return null;
    });
    ByteBuffer cread = ByteBuffer.allocate(16);
    anon[0].receive(cread);
    assertThat(ShimWire.decodeCread(cread.flip())).isEqualTo(9);
    anon[0].send(ShimWire.encodeResult(0));
    done.get(10, TimeUnit.SECONDS);

    CompletableFuture<Void> bad = async(() -> {
      o.anonFd().completeRead(10);
      return null;
    });
    anon[0].receive(ByteBuffer.allocate(16));
    anon[0].send(ShimWire.encodeResult(-Errno.EINVAL));
    assertThat(failure(bad)).isInstanceOf(ErrnoException.class)
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EINVAL));

    o.anonFd().close();
    assertThat(sawEof(anon[0])).as("closing the AnonFd is the anon fd's last close").isTrue();
    anon[0].close();

    CompletableFuture<Request> r2 = async(d::read);
    ShimWire.Request rq2 = next();
    byte[] read = bytes(new Message.Read(11, 3, 4096, 8192));
    reply(rq2.tag(), read.length, read);
    assertThat(r2.get(10, TimeUnit.SECONDS)).isEqualTo(new Request.Read(11, 3, 4096, 8192));

    CompletableFuture<Request> r3 = async(d::read);
    reply(next().tag(), 0, new byte[0]);
    assertThat(r3.get(10, TimeUnit.SECONDS)).as("read(2) == 0").isNull();
  }

  @Test
  void copen_andRestore_areWrites_andNegativeResultsAreErrnos() throws Exception {
    ShimDevice d = connected();
    CompletableFuture<Void> c = async(() -> {
      d.copen(7, 4096);
      return null;
    });
    ShimWire.Request w = next();
    assertThat(new String(w.payload(), StandardCharsets.US_ASCII)).isEqualTo("copen 7,4096");
    reply(w.tag(), w.payload().length, new byte[0]);
    c.get(10, TimeUnit.SECONDS);

    CompletableFuture<Void> e = async(() -> {
      d.copenError(8, Errno.ENOENT);
      return null;
    });
    ShimWire.Request w2 = next();
    assertThat(new String(w2.payload(), StandardCharsets.US_ASCII)).isEqualTo("copen 8,-2");
    reply(w2.tag(), w2.payload().length, new byte[0]);
    e.get(10, TimeUnit.SECONDS);

    CompletableFuture<Void> r = async(() -> {
      d.restore();
      return null;
    });
    ShimWire.Request w3 = next();
    assertThat(new String(w3.payload(), StandardCharsets.US_ASCII)).isEqualTo("restore");
    reply(w3.tag(), -Errno.EOPNOTSUPP, new byte[0]);
    assertThat(failure(r)).isInstanceOf(ErrnoException.class)
        .satisfies(x -> assertThat(((ErrnoException) x).errno()).isEqualTo(Errno.EOPNOTSUPP));
  }

  @Test
  void staleReplies_areDropped_andTheirFdsClosed() throws Exception {
    ShimDevice d = connected();
    UnixSocket[] stray = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    CompletableFuture<Request> r = async(d::read);
    ShimWire.Request rq = next();
    byte[] open = bytes(new Message.Open(1, 1, "erofs,d", "b", -1, 0));
    reply(rq.tag() + 1000, open.length, open, stray[1].fd(), stray[1].fd()); // not ours
    stray[1].release();
    reply(rq.tag(), 0, new byte[0]);
    assertThat(r.get(10, TimeUnit.SECONDS)).isNull();
    assertThat(sawEof(stray[0])).as("the stale OPEN's anon fd was closed").isTrue();
    stray[0].close();
  }

  @Test
  void adopt_drainsQueuedDatagrams_closesTheirFds_andDoesNotBind() throws Exception {
    UnixSocket[] pair = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    conn = pair[1];
    UnixSocket[] stray = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    byte[] open = bytes(new Message.Open(5, 2, "erofs,d", "b", -1, 0));
    reply(12345, open.length, open, stray[1].fd(), stray[1].fd()); // a reply the dead daemon never read
    stray[1].release();
    reply(12346, 13, new byte[0]);
    conn.send(ShimWire.Reply.WAKEUP.encode());

    device = ShimDevice.adopt(pair[0].fd());
    assertThat(device.drainedOnAdopt()).isEqualTo(3);
    assertThat(sawEof(stray[0])).isTrue();
    stray[0].close();
    assertThat(conn.receiveNonBlocking(ByteBuffer.allocate(64))).as("nothing sent: no bind").isNull();

    CompletableFuture<Void> restore = async(() -> {
      device.restore();
      return null;
    });
    ShimWire.Request w = next();
    assertThat(new String(w.payload(), StandardCharsets.US_ASCII)).isEqualTo("restore");
    reply(w.tag(), 7, new byte[0]);
    restore.get(10, TimeUnit.SECONDS);
  }

  @Test
  void adopt_ofADeadShim_isDeviceDead() throws Exception {
    UnixSocket[] pair = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    pair[1].close();
    assertThatThrownBy(() -> ShimDevice.adopt(pair[0].fd())).isInstanceOf(DeviceDeadException.class);
  }

  @Test
  void wakeups_makeAwaitReadableTrue_coalesced() throws Exception {
    ShimDevice d = connected();
    assertThat(d.awaitReadable(0)).as("first: just try").isTrue();
    assertThat(d.awaitReadable(50)).isFalse();
    conn.send(ShimWire.Reply.WAKEUP.encode());
    conn.send(ShimWire.Reply.WAKEUP.encode());
    assertThat(d.awaitReadable(5000)).isTrue();
    Thread.sleep(50);
    d.awaitReadable(0); // the second may or may not have arrived yet
    assertThat(d.awaitReadable(50)).isFalse();
  }

  @Test
  void aDeadShim_isDeviceDeadException_everywhere() throws Exception {
    ShimDevice d = connected();
    d.awaitReadable(0);
    CompletableFuture<Request> pending = async(d::read);
    next();
    conn.close();
    conn = null;
    assertThat(failure(pending)).isInstanceOf(DeviceDeadException.class);
    assertThatThrownBy(() -> d.awaitReadable(1000)).isInstanceOf(DeviceDeadException.class);
    assertThatThrownBy(d::read).isInstanceOf(DeviceDeadException.class);
    assertThatThrownBy(() -> d.copen(1, 1)).isInstanceOf(DeviceDeadException.class);
  }

  @Test
  void close_releasesItsFdOnly_soAHolderKeepsTheDeviceAlive() throws Exception {
    ShimDevice d = connected();
    int holder = Posix.dup(d.fd());
    d.close();
    device = null;
    Thread.sleep(50);
    assertThat(conn.receiveNonBlocking(ByteBuffer.allocate(64))).as("no EOF, no shutdown").isNull();
    Posix.close(holder);
    assertThat(sawEof(conn)).isTrue();
  }

  static byte[] bytes(Message m) {
    ByteBuffer b = MessageCodec.encode(m);
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }
}
