package io.lazypull.shim.fanotify;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.UnixSocket;
import io.lazypull.testing.ForeignPeer;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The relay's control socket admits only its own uid and root (SO_PEERCRED), as the holder. */
class ControlServerTest {
  @TempDir Path tmp;

  @Test
  void aPeerOfAnotherUid_isHungUpOn_beforeASessionStarts() throws Exception {
    ForeignPeer.assume();
    AtomicInteger sessions = new AtomicInteger();
    ControlServer.Handler handler = new ControlServer.Handler() {
      @Override
      public Object sessionStarted() {
        return sessions.incrementAndGet();
      }

      @Override
      public RelayWire.Reply open(Object session, RelayWire.Open open) {
        throw new AssertionError("no request expected");
      }

      @Override
      public RelayWire.Reply mounted(Object session, RelayWire.Mounted mounted) {
        throw new AssertionError("no request expected");
      }

      @Override
      public void sessionEnded(Object session) {}
    };
    Path sock = tmp.resolve("control.sock");
    try (ControlServer server = ControlServer.start(sock, handler)) {
      ForeignPeer.openUp(sock);
      assertThat(ForeignPeer.connect(sock)).as("what uid 65534 saw").isEqualTo("closed");
      assertThat(sessions.get()).as("sessions started for it").isZero();
      try (UnixSocket own = UnixSocket.connect(sock, UnixSocket.Type.SEQPACKET)) {
        for (int i = 0; i < 100 && sessions.get() == 0; i++) {
          Thread.sleep(100);
        }
        assertThat(sessions.get()).as("our own uid is served").isEqualTo(1);
      }
    }
  }
}
