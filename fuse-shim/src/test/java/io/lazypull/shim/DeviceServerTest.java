package io.lazypull.shim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.protocol.Message;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The device server over a real socket, driven by a hand-written daemon (no FUSE). */
class DeviceServerTest {
  @TempDir Path tmp;
  Path sock;
  Shim shim;
  final List<RawDaemon> daemons = new ArrayList<>();

  @BeforeEach
  void setUp() throws Exception {
    sock = tmp.resolve("dev.sock");
    shim = Shim.start(tmp.resolve("cache"), sock);
  }

  @AfterEach
  void tearDown() {
    daemons.forEach(RawDaemon::close);
    shim.close();
  }

  RawDaemon daemon() throws Exception {
    RawDaemon d = RawDaemon.connect(sock);
    daemons.add(d);
    return d;
  }

  RawDaemon bound() throws Exception {
    RawDaemon d = daemon();
    assertThat(d.write("bind ondemand")).isEqualTo(13);
    return d;
  }

  CompletableFuture<ShimFiles.Handle> openAsync(String blob) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return shim.files().open("dom", blob);
      } catch (ErrnoException e) {
        throw new java.util.concurrent.CompletionException(e);
      }
    });
  }

  static void await(BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      Thread.sleep(5);
    }
  }

  static int errnoOf(CompletableFuture<?> f) throws InterruptedException {
    try {
      f.get(10, TimeUnit.SECONDS);
      throw new AssertionError("expected a failure");
    } catch (ExecutionException e) {
      return ((ErrnoException) e.getCause()).errno();
    } catch (java.util.concurrent.TimeoutException e) {
      throw new AssertionError("still blocked", e);
    }
  }

  @Test
  void socket_isMode0600_andASecondConnectionGetsEbusy() throws Exception {
    assertThat(Files.getAttribute(sock, "unix:mode")).isEqualTo(Posix.S_IFSOCK | 0600);
    RawDaemon d1 = bound();
    assertThat(d1.write("bind ondemand")).isEqualTo(-Errno.EBUSY);
    RawDaemon d2 = daemon();
    RawDaemon.Got refusal = d2.receive();
    assertThat(refusal.reply().isRefusal()).isTrue();
    assertThat(refusal.reply().result()).isEqualTo(-Errno.EBUSY);
    assertThatThrownBy(d2::receive).hasMessageContaining("EOF");
    assertThat(d1.write("restore")).as("the first device is unaffected").isEqualTo(7);
  }

  @Test
  void aPeerOfAnotherUid_isHungUpOn_andDoesNotTakeTheDevice() throws Exception {
    io.lazypull.testing.ForeignPeer.assume();
    io.lazypull.testing.ForeignPeer.openUp(sock); // as if the mode had been opened up
    assertThat(io.lazypull.testing.ForeignPeer.connect(sock)).as("what uid 65534 saw").isEqualTo("closed");
    RawDaemon d = bound();
    assertThat(d.write("restore")).as("the device was free for our own daemon").isEqualTo(7);
  }

  @Test
  void commands_followTheKernelsRules() throws Exception {
    RawDaemon d = daemon();
    assertThat(d.read().reply().result()).as("read before bind").isZero();
    assertThat(d.write("restore")).isEqualTo(-Errno.EOPNOTSUPP);
    assertThat(d.write("copen 1,2")).isEqualTo(-Errno.EOPNOTSUPP);
    assertThat(d.write("dir /var/cache/x")).isEqualTo(16);
    assertThat(d.write("dir /other")).isEqualTo(-Errno.EEXIST);
    assertThat(d.write("tag t")).isEqualTo(5);
    assertThat(d.write("bogus")).isEqualTo(-Errno.EOPNOTSUPP);
    assertThat(d.write("bind")).as("classic mode is not emulated").isEqualTo(-Errno.EINVAL);
    assertThat(d.write("bind ondemand\n")).isEqualTo(14);
    assertThat(d.write("copen 1,2")).as("no such OPEN").isEqualTo(-Errno.EINVAL);
    assertThat(d.write("copen x")).isEqualTo(-Errno.EINVAL);
    assertThat(d.write("restore")).isEqualTo(7);
  }

  @Test
  void wakeups_atMostOneBetweenTwoReads() throws Exception {
    RawDaemon d = bound();
    List<CompletableFuture<ShimFiles.Handle>> lookups = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      lookups.add(openAsync("b" + i));
    }
    await(() -> shim.cache().pendingRequests().size() == 5, "5 OPENs queued");
    Thread.sleep(100);
    assertThat(d.drainWakeups()).as("5 requests, one wake-up").isEqualTo(1);

    RawDaemon.Got open = d.read();
    assertThat(open.message()).isInstanceOf(Message.Open.class);
    assertThat(open.fds()).hasSize(ShimWire.OPEN_FD_COUNT);
    lookups.add(openAsync("b5"));
    await(() -> shim.cache().pendingRequests().size() == 6, "another OPEN queued");
    Thread.sleep(100);
    assertThat(d.drainWakeups()).as("a READ re-arms the wake-up").isEqualTo(1);
    RawDaemon.closeAll(open.fds());
    shim.close(); // lets the lookups go (EIO)
    for (CompletableFuture<ShimFiles.Handle> f : lookups) {
      assertThat(errnoOf(f)).isEqualTo(Errno.EIO);
    }
  }

  @Test
  void open_copen_read_pwrite_cread_roundTrip() throws Exception {
    RawDaemon d = bound();
    CompletableFuture<ShimFiles.Handle> lookup = openAsync("blob");
    d.receive(); // wake-up
    RawDaemon.Got g = d.read();
    Message.Open m = (Message.Open) g.message();
    assertThat(m.volumeKey()).isEqualTo("erofs,dom");
    assertThat(m.cookieKey()).isEqualTo("blob");
    assertThat(m.fd()).isEqualTo(-1);
    int anon = g.fds()[ShimWire.OPEN_FD_ANON];
    int cacheFd = g.fds()[ShimWire.OPEN_FD_CACHE_FILE];
    assertThat(d.write("copen " + m.msgId() + ",5000")).isEqualTo(("copen " + m.msgId() + ",5000").length());
    ShimFiles.Handle h = lookup.get(10, TimeUnit.SECONDS);
    assertThat(h.object().size()).isEqualTo(5000);
    assertThat(Files.size(shim.cacheDir().resolve("erofs,dom").resolve("blob"))).isEqualTo(8192);

    ByteBuffer dst = ByteBuffer.allocateDirect(6000);
    CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> shim.files().read(h, dst, 100));
    await(() -> !shim.cache().pendingRequests().isEmpty(), "READ queued");
    RawDaemon.Got rg = d.read();
    Message.Read r = (Message.Read) rg.message();
    assertThat(r.objectId()).isEqualTo(m.objectId());
    assertThat(r.offset()).isZero();
    assertThat(r.length()).isEqualTo(8192);
    byte[] data = new byte[8192];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i * 7);
    }
    Posix.pwriteFully(cacheFd, ByteBuffer.wrap(data), 0);
    assertThat(read.isDone()).as("waits for the CREAD").isFalse();
    assertThat(RawDaemon.cread(anon, r.msgId())).isZero();
    assertThat(read.get(10, TimeUnit.SECONDS)).isEqualTo(4900);
    for (int i = 0; i < 4900; i++) {
      assertThat(dst.get(i)).isEqualTo(data[100 + i]);
    }
    assertThat(RawDaemon.cread(anon, r.msgId())).as("completed twice").isEqualTo(-Errno.EINVAL);
    assertThat(shim.files().read(h, ByteBuffer.allocate(10), 4096)).as("cached").isEqualTo(10);
    assertThat(shim.stats().cacheHits()).isEqualTo(1);
    assertThat(shim.stats().readRequests()).isEqualTo(1);
    RawDaemon.closeAll(g.fds());
  }

  @Test
  void anonClosedJustBeforeCopen_isSeenFirst_soTheOpenFailsWithEbadfd() throws Exception {
    RawDaemon d = bound();
    for (int i = 0; i < 20; i++) {
      CompletableFuture<ShimFiles.Handle> lookup = openAsync("b" + i);
      await(() -> !shim.cache().pendingRequests().isEmpty(), "OPEN queued");
      RawDaemon.Got g = d.read();
      Message.Open m = (Message.Open) g.message();
      RawDaemon.closeAll(g.fds()); // as the kernel's close(2): done before the next write
      assertThat(d.write("copen " + m.msgId() + ",4096")).as("write succeeds").isPositive();
      assertThat(errnoOf(lookup)).isEqualTo(Errno.EBADFD);
    }
  }

  @Test
  void deviceEof_failsWaitersWithEio_thenANewDeviceMayBind() throws Exception {
    RawDaemon d = bound();
    CompletableFuture<ShimFiles.Handle> lookup = openAsync("blob");
    await(() -> !shim.cache().pendingRequests().isEmpty(), "OPEN queued");
    d.close();
    assertThat(errnoOf(lookup)).isEqualTo(Errno.EIO);
    await(() -> !shim.cache().isBound(), "device gone");
    RawDaemon d2 = bound();
    assertThat(d2.read().reply().result()).isZero();
  }

  @Test
  void staleSocketFile_isReplaced_butALiveOneIsNot() throws Exception {
    assertThatThrownBy(() -> Shim.start(tmp.resolve("cache2"), sock))
        .hasMessageContaining("another shim is listening");
    Path stale = tmp.resolve("stale.sock");
    UnixSocket.listen(stale, UnixSocket.Type.SEQPACKET, 0600, 1).close(); // leaves the file
    assertThat(Files.exists(stale)).isTrue();
    try (Shim second = Shim.start(tmp.resolve("cache2"), stale)) {
      RawDaemon d = RawDaemon.connect(stale);
      assertThat(d.write("bind ondemand")).isEqualTo(13);
      d.close();
    }
    assertThat(Files.exists(stale)).as("removed on close").isFalse();
    Path plain = tmp.resolve("plain");
    Files.writeString(plain, "x");
    assertThatThrownBy(() -> Shim.start(tmp.resolve("cache3"), plain)).hasMessageContaining("not a socket");
  }
}
