package io.lazypull.daemon.failover;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HolderServerTest {
  @TempDir Path tmp;
  HolderServer holder;
  Thread serving;
  Path sock;

  @BeforeEach
  void start() throws Exception {
    sock = tmp.resolve("holder.sock");
    holder = HolderServer.listen(sock);
    serving = new Thread(() -> {
      try {
        holder.serve();
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
    serving.start();
  }

  @AfterEach
  void stop() throws Exception {
    holder.close();
    serving.join(5000);
  }

  /** A stand-in device: one end of a socket pair; the test keeps the other end. */
  static UnixSocket[] device() throws Exception {
    return UnixSocket.pair(UnixSocket.Type.SEQPACKET);
  }

  /** A daemon that took the lease and stored {@code device} with the holder. */
  private HolderClient activeDaemon(UnixSocket device) throws Exception {
    HolderClient active = HolderClient.connect(sock);
    active.take(0);
    active.put(device.fd());
    return active;
  }

  /** A standby's TAKE (waits without limit), answered when it gets the lease. */
  private static CompletableFuture<OptionalInt> takeAsStandby(HolderClient standby) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return standby.take(-1);
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    });
  }

  /** Waits (bounded) until the holder reports one waiting standby: its TAKE is on its way. */
  private static void awaitOneWaiting(HolderClient client) throws Exception {
    for (int i = 0; i < 500 && !client.status().contains("waiting=1"); i++) {
      Thread.sleep(20);
    }
  }

  @Test
  void socketIsPrivate() throws Exception {
    assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock))).isEqualTo("rw-------");
  }

  @Test
  void firstDaemonBindsAndPuts_secondIsBusy_standbyGetsTheSameDeviceAfterRelease() throws Exception {
    UnixSocket[] dev = device();
    HolderClient a = HolderClient.connect(sock);
    assertThat(a.take(0)).isEmpty(); // nothing held: bind a new device
    a.put(dev[0].fd());

    HolderClient b = HolderClient.connect(sock);
    assertThatThrownBy(() -> b.take(0)).isInstanceOf(HolderClient.BusyException.class)
        .hasMessageContaining("pid " + ProcessHandle.current().pid());

    HolderClient standby = HolderClient.connect(sock);
    CompletableFuture<OptionalInt> granted = takeAsStandby(standby);
    awaitOneWaiting(a);
    assertThat(a.status()).contains("held=true").contains("waiting=1");
    assertThat(granted).isNotDone();

    dev[0].release(); // the daemon's own fd goes away; the holder's copy keeps the device
    a.release();
    a.close();
    int fd = granted.get(10, TimeUnit.SECONDS).getAsInt();
    UnixSocket adopted = UnixSocket.adopt(fd, UnixSocket.Type.SEQPACKET);
    adopted.send(ByteBuffer.wrap("via the held fd".getBytes(StandardCharsets.US_ASCII)));
    ByteBuffer got = ByteBuffer.allocate(64);
    dev[1].receive(got);
    assertThat(new String(got.array(), 0, got.position(), StandardCharsets.US_ASCII)).isEqualTo("via the held fd");
    adopted.release();
    standby.close();
    b.close();
    dev[1].close();
  }

  @Test
  void putWhileHolding_refused_neverRebind() throws Exception {
    UnixSocket[] dev = device();
    HolderClient a = HolderClient.connect(sock);
    a.take(0);
    a.put(dev[0].fd());
    a.release();
    a.close();
    HolderClient b = HolderClient.connect(sock);
    int fd = b.take(5000).getAsInt();
    UnixSocket[] other = device();
    assertThatThrownBy(() -> b.put(other[0].fd())).hasMessageContaining("already held");
    Posix.closeQuietly(fd);
    b.close();
  }

  @Test
  void upgrade_sendsHandoverToTheActiveDaemon_onlyWithAStandby() throws Exception {
    UnixSocket[] dev = device();
    HolderClient active = activeDaemon(dev[0]);
    CountDownLatch handover = new CountDownLatch(1);
    active.onHandover(handover::countDown);

    HolderClient admin = HolderClient.connect(sock);
    assertThatThrownBy(admin::upgrade).hasMessageContaining("no standby");

    HolderClient standby = HolderClient.connect(sock);
    CompletableFuture<OptionalInt> granted = takeAsStandby(standby);
    awaitOneWaiting(admin);
    assertThat(admin.upgrade()).isEqualTo(ProcessHandle.current().pid());
    assertThat(handover.await(5, TimeUnit.SECONDS)).isTrue();
    active.release();
    active.close();
    assertThat(granted.get(10, TimeUnit.SECONDS)).isPresent();
    standby.close();
    admin.close();
  }

  @Test
  void handoverBeforeTheHandlerIsSet_runsItWhenSet() throws Exception {
    UnixSocket[] dev = device();
    HolderClient active = activeDaemon(dev[0]);
    HolderClient standby = HolderClient.connect(sock);
    CompletableFuture<OptionalInt> granted = takeAsStandby(standby);
    HolderClient admin = HolderClient.connect(sock);
    awaitOneWaiting(admin);
    admin.upgrade(); // the active daemon has not set its handler yet (still starting to serve)
    Thread.sleep(200);
    CountDownLatch handover = new CountDownLatch(1);
    active.onHandover(handover::countDown);
    assertThat(handover.await(5, TimeUnit.SECONDS)).as("the early request is not lost").isTrue();
    active.release();
    active.close();
    assertThat(granted.get(10, TimeUnit.SECONDS)).isPresent();
    standby.close();
    admin.close();
  }

  @Test
  void holderGone_deviceCopyClosed() throws Exception {
    UnixSocket[] dev = device();
    HolderClient a = HolderClient.connect(sock);
    a.take(0);
    a.put(dev[0].fd());
    dev[0].release();
    a.close();
    holder.close();
    // With the daemon's and the holder's copies closed, the device sees EOF: the cache is dead.
    assertThat(dev[1].receive(ByteBuffer.allocate(16)).eof()).isTrue();
  }

  @Test
  void isRunning_tracksAChildProcess() throws Exception {
    Process p = new ProcessBuilder("sleep", "30").start();
    int pid = (int) p.pid();
    assertThat(HolderServer.isRunning(pid)).isTrue();
    p.destroyForcibly().waitFor();
    assertThat(HolderServer.isRunning(pid)).isFalse();
  }

  @Test
  void connect_noHolder_saysHowToStartOne() {
    assertThatThrownBy(() -> HolderClient.connect(tmp.resolve("none.sock")))
        .hasMessageContaining("lazypull holder --socket");
  }

  @Test
  void heldShimDevice_whosePeerIsGone_isDropped_theNextDaemonBindsANewOne() throws Exception {
    UnixSocket[] dev = device();
    try (HolderClient active = activeDaemon(dev[0])) {
      dev[0].close(); // the daemon's copy
    }
    dev[1].close(); // the shim (or fanotify relay) at the other end died
    try (HolderClient next = HolderClient.connect(sock)) {
      assertThat(next.take(5000)).as("no device to restore: a new one must be bound").isEmpty();
    }
  }

  /** One raw GROUP exchange on {@code s}: the reply line. */
  private static String group(UnixSocket s, String line, int... fds) throws Exception {
    io.lazypull.protocol.HolderWire.send(s, line, fds);
    io.lazypull.protocol.HolderWire.Line reply = io.lazypull.protocol.HolderWire.receive(s);
    reply.closeFds();
    return reply.text();
  }

  @Test
  void fanotifyGroup_onlyTheRelayThatTookItStoresIt_aSecondRelayIsBusy_dropLetsItGo() throws Exception {
    int stand = Posix.eventfd(0, 0); // the wire does not look at what the fd is
    try (UnixSocket relay = UnixSocket.connect(sock, UnixSocket.Type.SEQPACKET);
        UnixSocket other = UnixSocket.connect(sock, UnixSocket.Type.SEQPACKET)) {
      assertThat(group(other, "GROUP PUT 100", stand)).startsWith("ERR");
      assertThat(group(relay, "GROUP TAKE 100")).isEqualTo("NONE");
      assertThat(group(other, "GROUP TAKE 100")).startsWith("BUSY ");
      assertThat(group(relay, "GROUP FILE erofs,d/blob", stand)).as("a file before the group").startsWith("ERR");
      assertThat(group(relay, "GROUP PUT 100", stand)).isEqualTo("OK");
      assertThat(group(relay, "GROUP FILE erofs,d/blob", stand)).isEqualTo("OK");
      assertThat(group(other, "GROUP FILE erofs,d/other", stand)).startsWith("ERR");
      try (HolderClient c = HolderClient.connect(sock)) {
        assertThat(c.status()).contains("group=owned").contains("files=1");
      }
      assertThat(group(relay, "GROUP DROP")).isEqualTo("OK");
      assertThat(group(other, "GROUP TAKE 100")).as("dropped: a new relay makes a new group").isEqualTo("NONE");
    } finally {
      Posix.closeQuietly(stand);
    }
  }
}
