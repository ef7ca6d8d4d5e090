package io.lazypull.shim;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.protocol.Message;
import io.lazypull.protocol.Opcode;
import io.lazypull.shim.ondemand.PendingRequest;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shim's bound on a reader's wait when a device is bound but no daemon answers (a holder
 * keeps the socket, the daemon never comes back): EIO after the daemon timeout, not a hang.
 */
class DaemonTimeoutTest {
  @TempDir Path tmp;
  Path sock;
  Shim shim;
  RawDaemon daemon;

  @BeforeEach
  void setUp() throws Exception {
    sock = tmp.resolve("dev.sock");
    shim = Shim.start(tmp.resolve("cache"), sock, Duration.ofMillis(500));
    daemon = RawDaemon.connect(sock);
    assertThat(daemon.write("bind ondemand")).isEqualTo(13);
  }

  @AfterEach
  void tearDown() {
    daemon.close();
    shim.close();
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

  @Test
  void lookup_noAnswer_eioAtTheBound_andItsOpenStaysQueuedForTheNextLookup() throws Exception {
    int errno = DeviceServerTest.errnoOf(openAsync("blob")); // before the bound: "still blocked"
    assertThat(errno).isEqualTo(Errno.EIO);
    assertThat(shim.cache().pendingRequests()).extracting(PendingRequest::opcode).containsExactly(Opcode.OPEN);

    CompletableFuture<ShimFiles.Handle> again = openAsync("blob");
    RawDaemon.Got g = daemon.read(); // a daemon answers after all
    Message.Open m = (Message.Open) g.message();
    assertThat(daemon.write("copen " + m.msgId() + ",4096")).isPositive();
    assertThat(again.get(10, TimeUnit.SECONDS).object().size()).isEqualTo(4096);
    RawDaemon.closeAll(g.fds());
  }

  @Test
  void read_noAnswer_eioAtTheBound_andTheReadLeavesTheTable() throws Exception {
    CompletableFuture<ShimFiles.Handle> lookup = openAsync("blob");
    DeviceServerTest.await(() -> !shim.cache().pendingRequests().isEmpty(), "OPEN queued");
    RawDaemon.Got g = daemon.read();
    Message.Open m = (Message.Open) g.message();
    assertThat(daemon.write("copen " + m.msgId() + ",8192")).isPositive();
    ShimFiles.Handle h = lookup.get(10, TimeUnit.SECONDS);

    CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> shim.files().read(h, ByteBuffer.allocate(100), 0));
    assertThat(read.get(10, TimeUnit.SECONDS)).as("before the bound: a hang").isEqualTo(-Errno.EIO);
    assertThat(shim.cache().pendingRequests()).as("withdrawn, as for a killed reader").isEmpty();
    assertThat(shim.stats().readFailures()).isEqualTo(1);
    RawDaemon.closeAll(g.fds());
  }
}
