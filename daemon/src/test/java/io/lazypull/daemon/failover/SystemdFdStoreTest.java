package io.lazypull.daemon.failover;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Against a stand-in for systemd's notify socket (a datagram socket, as systemd binds). */
class SystemdFdStoreTest {
  @TempDir Path tmp;

  @Test
  void store_sendsFdstoreWithNameAndTheFd() throws Exception {
    Path notify = tmp.resolve("notify");
    try (UnixSocket systemd = UnixSocket.bindDatagram(notify, 0600)) {
      UnixSocket[] dev = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
      SystemdFdStore store = new SystemdFdStore(Map.of("NOTIFY_SOCKET", notify.toString()), 1234);
      store.store(dev[0].fd());
      ByteBuffer buf = ByteBuffer.allocate(256);
      UnixSocket.Received r = systemd.receive(buf);
      assertThat(new String(buf.array(), 0, r.bytes(), StandardCharsets.US_ASCII))
          .isEqualTo("FDSTORE=1\nFDNAME=lazypull-device\n");
      assertThat(r.fds()).hasSize(1);
      // The stored copy is the same socket: what goes in at one end comes out of the other.
      UnixSocket.adopt(r.fds()[0], UnixSocket.Type.SEQPACKET).send(ByteBuffer.wrap(new byte[] {42}));
      ByteBuffer one = ByteBuffer.allocate(4);
      dev[1].receive(one);
      assertThat(one.get(0)).isEqualTo((byte) 42);
      r.closeFds();
      dev[0].close();
      dev[1].close();
    }
  }

  @Test
  void recover_findsTheNamedFd_onlyForOurPid() throws Exception {
    int fd = Posix.eventfd(0, 0);
    // Put it at a known number >= 3 the way systemd would, as LISTEN_FDS_START + index.
    int index = fd - 3;
    StringBuilder names = new StringBuilder();
    for (int i = 0; i < index; i++) {
      names.append("other:");
    }
    names.append("lazypull-device");
    Map<String, String> env = Map.of("NOTIFY_SOCKET", "/dev/null", "LISTEN_PID", "77",
        "LISTEN_FDS", Integer.toString(index + 1), "LISTEN_FDNAMES", names.toString());
    assertThat(new SystemdFdStore(env, 77).recover()).hasValue(fd);
    assertThat(new SystemdFdStore(env, 78).recover()).isEmpty(); // fds meant for another process
    assertThat(new SystemdFdStore(Map.of("NOTIFY_SOCKET", "x"), 77).recover()).isEmpty();
    Posix.close(fd);
  }
}
