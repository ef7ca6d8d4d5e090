package io.lazypull.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class UnixSocketTest {
  @TempDir Path tmp;

  private static ByteBuffer text(String s) {
    return ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
  }

  private static String text(ByteBuffer b) {
    b.flip();
    return StandardCharsets.UTF_8.decode(b).toString();
  }

  @Test
  void seqpacket_keepsMessageBoundaries_andPassesFds() throws Exception {
    UnixSocket[] p = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    Path file = tmp.resolve("f");
    Files.writeString(file, "through the passed fd");
    int fd = Posix.open(file.toString(), Posix.O_RDONLY, 0);
    try (UnixSocket a = p[0]; UnixSocket b = p[1]) {
      a.send(text("one"), fd);
      a.send(text("two"));
      Posix.close(fd);

      ByteBuffer buf = ByteBuffer.allocate(64);
      UnixSocket.Received r1 = b.receive(buf);
      assertThat(text(buf)).isEqualTo("one");
      assertThat(r1.fds()).hasSize(1);
      ByteBuffer content = ByteBuffer.allocate(64);
      Posix.pread(r1.fds()[0], content, 0);
      assertThat(text(content)).isEqualTo("through the passed fd");
      r1.closeFds();

      buf.clear();
      UnixSocket.Received r2 = b.receive(buf);
      assertThat(text(buf)).isEqualTo("two");
      assertThat(r2.fds()).isEmpty();
      assertThat(b.receiveNonBlocking(ByteBuffer.allocate(8))).isNull();
    }
  }

  @Test
  void seqpacket_datagramBiggerThanBuffer_isAnError() throws Exception {
    UnixSocket[] p = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    try (UnixSocket a = p[0]; UnixSocket b = p[1]) {
      a.send(text("0123456789"));
      assertThatThrownBy(() -> b.receive(ByteBuffer.allocate(4)))
          .isInstanceOf(ErrnoException.class).hasMessageContaining("message of 10 bytes, buffer 4");
    }
  }

  @Test
  void peerClose_isEof_andReleaseKeepsTheConnectionForOtherCopies() throws Exception {
    UnixSocket[] p = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    UnixSocket a = p[0];
    UnixSocket copy = UnixSocket.adopt(Posix.dup(a.fd()), UnixSocket.Type.SEQPACKET);
    try (UnixSocket b = p[1]) {
      a.release(); // the dup still holds the connection open
      copy.send(text("still here"));
      ByteBuffer buf = ByteBuffer.allocate(32);
      assertThat(b.receive(buf).bytes()).isEqualTo(10);
      copy.release();
      assertThat(b.receive(ByteBuffer.allocate(32)).eof()).isTrue();
    }
  }

  @Test
  void listen_setsModeAndReportsPeerCredentials() throws Exception {
    Path path = tmp.resolve("s.sock");
    try (UnixSocket server = UnixSocket.listen(path, UnixSocket.Type.STREAM, 0600, 4)) {
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(path))).isEqualTo("rw-------");
      CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(() -> {
        try {
          return server.accept();
        } catch (ErrnoException e) {
          throw new RuntimeException(e);
        }
      });
      try (UnixSocket client = UnixSocket.connect(path, UnixSocket.Type.STREAM);
          UnixSocket conn = accepted.get(10, TimeUnit.SECONDS)) {
        UnixSocket.PeerCredentials cred = conn.peerCredentials();
        assertThat(cred.pid()).isEqualTo(ProcessHandle.current().pid());
        assertThat(cred.uid()).isEqualTo(Posix.getuid());
        client.sendFully(text("hi"));
        ByteBuffer buf = ByteBuffer.allocate(8);
        conn.receive(buf);
        assertThat(text(buf)).isEqualTo("hi");
      }
    }
  }

  @Test
  void close_wakesABlockedAccept() throws Exception {
    UnixSocket server = UnixSocket.listen(tmp.resolve("w.sock"), UnixSocket.Type.SEQPACKET, 0600, 1);
    CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(() -> {
      try {
        return server.accept();
      } catch (ErrnoException e) {
        throw new RuntimeException(e);
      }
    });
    Thread.sleep(100);
    server.close();
    assertThat(accepted.get(10, TimeUnit.SECONDS)).isNull();
  }

  /**
   * The fd number stays ours while a thread is inside a call on it: freed at once, the next
   * socket could get the same number and the old reader would steal its messages.
   */
  @Test
  void release_whileAThreadReceives_freesTheFdNumberOnlyWhenItLeaves() throws Exception {
    UnixSocket[] p = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    int fd = p[0].fd();
    CompletableFuture<String> got = CompletableFuture.supplyAsync(() -> {
      try {
        ByteBuffer buf = ByteBuffer.allocate(16);
        p[0].receive(buf);
        return text(buf);
      } catch (ErrnoException e) {
        throw new RuntimeException(e);
      }
    });
    Thread.sleep(200); // the reader is inside recvmsg now
    p[0].release();
    assertThat(Posix.isOpen(fd)).as("the number is not free while the reader uses it").isTrue();
    p[1].send(text("late"));
    assertThat(got.get(10, TimeUnit.SECONDS)).isEqualTo("late");
    assertThat(Posix.isOpen(fd)).as("freed once the reader left").isFalse();
    assertThatThrownBy(() -> p[0].receive(ByteBuffer.allocate(4))).hasMessageContaining("EBADF");
    p[1].close();
  }

  @Test
  void connect_missingPath_namesThePath() {
    assertThatThrownBy(() -> UnixSocket.connect(tmp.resolve("nope"), UnixSocket.Type.SEQPACKET))
        .isInstanceOf(ErrnoException.class).hasMessageContaining("nope").hasMessageContaining("ENOENT");
  }
}
