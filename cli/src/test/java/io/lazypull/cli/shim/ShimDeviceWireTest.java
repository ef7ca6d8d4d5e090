package io.lazypull.cli.shim;

import static io.lazypull.testing.Async.async;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.daemon.device.Request;
import io.lazypull.daemon.shim.ShimDevice;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.shim.Shim;
import io.lazypull.shim.ShimFiles;
import io.lazypull.shim.ondemand.PendingRequest;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's ShimDevice against the real shim over a real socket, without FUSE: the test
 * plays FUSE (ShimFiles calls from other threads) and the daemon (ShimDevice calls), step by
 * step, including a daemon crash with and without a holder of the device socket.
 */
class ShimDeviceWireTest {
  @TempDir Path tmp;
  Path sock;
  Shim shim;
  ShimDevice d1;
  ShimDevice d2;
  final byte[] blob = new byte[3 * 4096 + 100];

  @BeforeEach
  void start() throws Exception {
    new Random(5).nextBytes(blob);
    sock = tmp.resolve("dev.sock");
    shim = Shim.start(tmp.resolve("cache"), sock);
  }

  @AfterEach
  void stop() {
    if (d1 != null) {
      d1.close();
    }
    if (d2 != null) {
      d2.close();
    }
    shim.close();
  }

  static void await(BooleanSupplier c, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!c.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(5);
    }
  }

  /** The next request, waiting for a wake-up if there is none yet. */
  static Request next(ShimDevice d) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (System.nanoTime() < deadline) {
      Request r = d.read();
      if (r != null) {
        return r;
      }
      d.awaitReadable(200);
    }
    throw new AssertionError("no request within 10 s");
  }

  CompletableFuture<ShimFiles.Handle> open(String name) {
    return async(() -> shim.files().open("dom", name));
  }

  CompletableFuture<Integer> read(ShimFiles.Handle h, ByteBuffer dst, long offset) {
    return CompletableFuture.supplyAsync(() -> shim.files().read(h, dst, offset));
  }

  /** Answers the OPEN and returns the handle the lookup got. */
  ShimFiles.Handle opened(ShimDevice d, CompletableFuture<ShimFiles.Handle> lookup, Request.Open[] out) throws Exception {
    Request.Open o = (Request.Open) next(d);
    d.copen(o.msgId(), blob.length);
    if (out != null) {
      out[0] = o;
    }
    return lookup.get(10, TimeUnit.SECONDS);
  }

  static void fill(Request.Open o, Request.Read r, byte[] blob) throws Exception {
    ByteBuffer b = ByteBuffer.allocateDirect((int) r.length());
    b.put(blob, (int) r.offset(), (int) Math.min(r.length(), blob.length - r.offset())).clear();
    o.anonFd().write(r.offset(), b);
    o.anonFd().completeRead(r.msgId());
  }

  @Test
  void open_copen_read_pwrite_cread_roundTrip() throws Exception {
    d1 = ShimDevice.connect(sock);
    Request.Open[] o = new Request.Open[1];
    ShimFiles.Handle h = opened(d1, open("blob"), o);
    assertThat(o[0].volumeKey()).isEqualTo("erofs,dom");
    assertThat(o[0].cookieKey()).isEqualTo("blob");
    assertThat(h.object().size()).isEqualTo(blob.length);

    ByteBuffer dst = ByteBuffer.allocate(5000);
    CompletableFuture<Integer> r = read(h, dst, 4000);
    Request.Read rd = (Request.Read) next(d1);
    assertThat(rd.objectId()).isEqualTo(o[0].objectId());
    assertThat(rd.offset()).isZero();
    assertThat(rd.length()).isEqualTo(12288);
    assertThat(o[0].anonFd().seekData(0)).as("nothing cached yet").isEqualTo(-1);
    fill(o[0], rd, blob);
    assertThat(r.get(10, TimeUnit.SECONDS)).isEqualTo(5000);
    for (int i = 0; i < 5000; i++) {
      assertThat(dst.get(i)).isEqualTo(blob[4000 + i]);
    }
    assertThat(o[0].anonFd().seekHole(0)).isEqualTo(12288);
    assertThatThrownBy(() -> o[0].anonFd().completeRead(rd.msgId())).as("completed twice")
        .isInstanceOf(ErrnoException.class).satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EINVAL));
    assertThat(d1.read()).isNull();
  }

  @Test
  void secondDevice_isEbusy() throws Exception {
    d1 = ShimDevice.connect(sock);
    assertThatThrownBy(() -> ShimDevice.connect(sock)).isInstanceOf(ErrnoException.class)
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EBUSY));
    d1.restore(); // the first one is unaffected
  }

  @Test
  void wakeups_areCoalesced_andFeedAwaitReadable() throws Exception {
    d1 = ShimDevice.connect(sock);
    assertThat(d1.awaitReadable(0)).as("first call: just try").isTrue();
    assertThat(d1.read()).isNull();
    assertThat(d1.awaitReadable(50)).isFalse();
    for (int i = 0; i < 5; i++) {
      open("b" + i);
    }
    await(() -> shim.cache().pendingRequests().size() == 5, "5 OPENs");
    assertThat(d1.awaitReadable(5000)).isTrue();
    assertThat(d1.awaitReadable(200)).as("one wake-up for the five").isFalse();
    for (int i = 0; i < 5; i++) {
      Request.Open o = (Request.Open) d1.read();
      d1.copenError(o.msgId(), Errno.ENOENT);
      o.anonFd().close();
    }
    assertThat(d1.read()).isNull();
    open("b5");
    assertThat(d1.awaitReadable(5000)).as("a READ re-arms the wake-up").isTrue();
    Request.Open o = (Request.Open) d1.read();
    d1.copenError(o.msgId(), Errno.ENOENT);
    o.anonFd().close();
  }

  @Test
  void staleReplies_ofADeadDaemon_areDrainedOnAdopt_andItsOpenComesAgain() throws Exception {
    d1 = ShimDevice.connect(sock);
    int holder = Posix.dup(d1.fd());
    CompletableFuture<ShimFiles.Handle> lookup = open("blob");
    await(() -> shim.cache().pendingRequests().size() == 1, "OPEN queued");
    PendingRequest openReq = shim.cache().pendingRequests().get(0);
    d1.close(); // the daemon dies...
    d1 = null;
    // ...right after sending a READ datagram whose reply (the OPEN, with its fds) it never reads.
    UnixSocket ghost = UnixSocket.adopt(Posix.dup(holder), UnixSocket.Type.SEQPACKET);
    ghost.send(ShimWire.Request.read(777).encode());
    ghost.release();
    await(() -> !shim.cache().isNew(openReq), "the OPEN delivered to the dead daemon");
    int firstId = openReq.object().objectId();
    assertThat(firstId).isPositive();

    d2 = ShimDevice.adopt(holder);
    assertThat(d2.drainedOnAdopt()).isGreaterThanOrEqualTo(1);
    d2.restore();
    Request.Open again = (Request.Open) next(d2);
    assertThat(again.msgId()).isEqualTo(openReq.msgId());
    assertThat(again.objectId()).as("a new object id").isNotEqualTo(firstId);
    d2.copen(again.msgId(), blob.length);
    assertThat(lookup.get(10, TimeUnit.SECONDS).object().size()).isEqualTo(blob.length);
  }

  @Test
  void daemonCrash_withAHolder_pendingReadSurvives_andCompletesAfterAdoptAndRestore() throws Exception {
    d1 = ShimDevice.connect(sock);
    int holder = Posix.dup(d1.fd()); // what 'lazypull holder' keeps
    Request.Open[] o = new Request.Open[1];
    ShimFiles.Handle h = opened(d1, open("blob"), o);
    ByteBuffer dst = ByteBuffer.allocate(4096);
    CompletableFuture<Integer> r = read(h, dst, 8192);
    Request.Read rd = (Request.Read) next(d1);
    assertThat(rd.objectId()).isEqualTo(o[0].objectId());

    // kill -9: every fd of the daemon closes, nothing is answered.
    o[0].anonFd().close();
    d1.close();
    d1 = null;
    Thread.sleep(300);
    assertThat(r.isDone()).as("the reader keeps waiting").isFalse();

    d2 = ShimDevice.adopt(holder);
    d2.restore();
    Request.Open reopen = (Request.Open) next(d2);
    assertThat(reopen.objectId()).as("new object id").isNotEqualTo(o[0].objectId());
    assertThat(reopen.cookieKey()).isEqualTo("blob");
    assertThat(reopen.msgId()).isNotEqualTo(rd.msgId());
    d2.copen(reopen.msgId(), blob.length);
    Request.Read again = (Request.Read) next(d2);
    assertThat(again.msgId()).as("the original msg id").isEqualTo(rd.msgId());
    assertThat(again.objectId()).as("the new object id").isEqualTo(reopen.objectId());
    assertThat(again.offset()).isEqualTo(rd.offset());
    fill(reopen, again, blob);
    assertThat(r.get(10, TimeUnit.SECONDS)).isEqualTo(4096);
    assertThat(dst.array()).isEqualTo(java.util.Arrays.copyOfRange(blob, 8192, 8192 + 4096));
  }

  @Test
  void daemonCrash_withoutAHolder_givesTheReaderEio() throws Exception {
    d1 = ShimDevice.connect(sock);
    Request.Open[] o = new Request.Open[1];
    ShimFiles.Handle h = opened(d1, open("blob"), o);
    CompletableFuture<Integer> r = read(h, ByteBuffer.allocate(4096), 0);
    next(d1);
    o[0].anonFd().close();
    d1.close();
    d1 = null;
    assertThat(r.get(10, TimeUnit.SECONDS)).isEqualTo(-Errno.EIO);
    assertThat(shim.files().read(h, ByteBuffer.allocate(10), 0)).as("dead for good").isEqualTo(-Errno.EIO);
    try {
      open("blob").get(10, TimeUnit.SECONDS);
      throw new AssertionError("a lookup without a device must fail");
    } catch (ExecutionException e) {
      assertThat(((ErrnoException) e.getCause()).errno()).isEqualTo(Errno.EIO);
    }
  }
}
