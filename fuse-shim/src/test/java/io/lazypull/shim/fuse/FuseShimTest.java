package io.lazypull.shim.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.protocol.shim.ShimWire;
import io.lazypull.sys.Errno;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The FUSE binding and mount lifecycle, with a minimal daemon written on the raw wire (the
 * daemon-side ShimDevice is tested end to end with FUSE and EROFS in the cli module).
 */
class FuseShimTest {
  @TempDir Path tmp;
  final Map<String, byte[]> blobs = new HashMap<>();
  Thread daemonThread;
  final AtomicBoolean stop = new AtomicBoolean();
  final AtomicInteger reads = new AtomicInteger();
  UnixSocket daemonSocket;

  @BeforeEach
  void requirements() {
    Requirements.assumeFuse();
  }

  @AfterEach
  void noMountsLeft() throws IOException {
    stop.set(true);
    if (daemonSocket != null) {
      daemonSocket.shutdown();
    }
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      assertThat(m.mountPoint()).doesNotStartWith(tmp.toString());
    }
  }

  /** A one-thread daemon on the raw wire: OPEN -> copen(size) or ENOENT; READ -> fill, CREAD. */
  void startDaemon(Path socket) throws Exception {
    daemonSocket = UnixSocket.connect(socket, UnixSocket.Type.SEQPACKET);
    Map<Integer, int[]> fds = new HashMap<>();
    Map<Integer, String> names = new HashMap<>();
    int[] tag = {1};
    daemonThread = new Thread(() -> {
      try {
        call(ShimWire.Request.write(tag[0]++, "bind ondemand"));
        while (!stop.get()) {
          RawReply r = call(ShimWire.Request.read(tag[0]++));
          if (r.reply.result() == 0) {
            continue; // next read blocks in call() until a wake-up or reply arrives
          }
          Message m = MessageCodec.decode(r.reply.payloadBuffer());
          if (m instanceof Message.Open o) {
            byte[] data = blobs.get(o.cookieKey());
            if (data == null) {
              call(ShimWire.Request.write(tag[0]++, "copen " + o.msgId() + ",-2"));
              RawDaemonFds.close(r.fds);
            } else {
              fds.put(o.objectId(), r.fds);
              names.put(o.objectId(), o.cookieKey());
              call(ShimWire.Request.write(tag[0]++, "copen " + o.msgId() + "," + data.length));
            }
          } else if (m instanceof Message.Read rd) {
            reads.incrementAndGet();
            byte[] data = blobs.get(names.get(rd.objectId()));
            byte[] page = new byte[(int) rd.length()];
            System.arraycopy(data, (int) rd.offset(), page, 0,
                (int) Math.max(0, Math.min(rd.length(), data.length - rd.offset())));
            int[] f = fds.get(rd.objectId());
            Posix.pwriteFully(f[1], ByteBuffer.wrap(page), rd.offset());
            UnixSocket anon = UnixSocket.adopt(f[0], UnixSocket.Type.SEQPACKET);
            anon.send(ShimWire.encodeCread(rd.msgId()));
            anon.receive(ByteBuffer.allocate(4));
          } else if (m instanceof Message.Close c) {
            RawDaemonFds.close(fds.remove(c.objectId()));
          }
        }
      } catch (IOException e) {
        if (!stop.get()) {
          e.printStackTrace();
        }
      }
    }, "raw-daemon");
    daemonThread.setDaemon(true);
    daemonThread.start();
  }

  record RawReply(ShimWire.Reply reply, int[] fds) {}

  /** Sends and waits for the reply with that tag; wake-ups just wake us. */
  RawReply call(ShimWire.Request req) throws IOException {
    daemonSocket.send(req.encode());
    while (true) {
      ByteBuffer b = ByteBuffer.allocate(ShimWire.MAX_REPLY_SIZE);
      UnixSocket.Received rec = daemonSocket.receive(b);
      if (rec.eof()) {
        throw new IOException("device EOF");
      }
      ShimWire.Reply r = ShimWire.Reply.decode(b.flip());
      if (r.tag() == req.tag()) {
        return new RawReply(r, rec.fds());
      }
      if (r.isWakeup() && req.kind() == ShimWire.KIND_READ) {
        continue;
      }
    }
  }

  static final class RawDaemonFds {
    static void close(int[] fds) {
      if (fds != null) {
        for (int fd : fds) {
          Posix.closeQuietly(fd);
        }
      }
    }
  }

  static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void blobs_readThroughFuse_matchTheirBytes_andReadsAreServedOnce() throws Exception {
    blobs.put("sha256:aa", random(300_000, 1));
    blobs.put("small", "hello, shim\n".getBytes(StandardCharsets.US_ASCII));
    Path mp = tmp.resolve("mnt");
    Path sock = tmp.resolve("dev.sock");
    try (FuseShim f = FuseShim.start(mp, tmp.resolve("cache"), sock, FuseShim.Options.DEFAULT)) {
      startDaemon(sock);
      for (int i = 0; i < 1000 && !f.shim().cache().isBound(); i++) {
        Thread.sleep(5);
      }
      Path dom = mp.resolve("dom");
      assertThat(Files.isDirectory(dom)).isTrue();
      assertThat(Files.size(dom.resolve("small"))).isEqualTo(12);
      assertThat(Files.readString(dom.resolve("small"))).isEqualTo("hello, shim\n");
      assertThat(Files.readAllBytes(dom.resolve("sha256:aa"))).isEqualTo(blobs.get("sha256:aa"));
      int firstReads = reads.get();
      assertThat(firstReads).isPositive();
      assertThat(Files.readAllBytes(dom.resolve("sha256:aa"))).isEqualTo(blobs.get("sha256:aa"));
      assertThat(reads.get()).as("cached").isEqualTo(firstReads);
      assertThatThrownBy(() -> Files.size(dom.resolve("missing"))).isInstanceOf(IOException.class);
      try (Stream<Path> s = Files.list(mp)) {
        assertThat(s.map(p -> p.getFileName().toString())).containsExactly("dom");
      }
      try (Stream<Path> s = Files.list(dom)) {
        assertThat(s.map(p -> p.getFileName().toString()).sorted()).containsExactly("sha256:aa", "small");
      }
      assertThatThrownBy(() -> Files.writeString(dom.resolve("small"), "x")).isInstanceOf(IOException.class);
      Mounts.MountInfo mi = Mounts.mountInfo(mp);
      assertThat(mi.source()).isEqualTo("lazypull-shim");
    }
    assertThat(Mounts.isMountPoint(mp)).isFalse();
  }

  @Test
  void deadMountOfAKilledShim_isLazilyUnmounted_beforeANewMount() throws Exception {
    Path mp = tmp.resolve("mnt");
    Path sock = tmp.resolve("dev.sock");
    Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("java.class.path"), "-Djna.tmpdir=" + System.getProperty("jna.tmpdir", "target/jna"),
        "-Xmx64m", ShimChild.class.getName(), mp.toString(), tmp.resolve("cache").toString(), sock.toString())
        .redirectErrorStream(true).start();
    try {
      java.io.BufferedReader out = new java.io.BufferedReader(
          new java.io.InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      String line;
      while ((line = out.readLine()) != null && !line.equals("MOUNTED")) {
        System.err.println("child: " + line);
      }
      assertThat(line).as("the child mounted").isEqualTo("MOUNTED");
      child.destroyForcibly().waitFor(); // SIGKILL: the mount stays, its connection is gone
      assertThat(Mounts.isMountPoint(mp)).isTrue();
      assertThatThrownBy(() -> Posix.open(mp.toString(), Posix.O_RDONLY, 0))
          .satisfies(e -> assertThat(((io.lazypull.sys.ErrnoException) e).errno()).isEqualTo(Errno.ENOTCONN));

      try (FuseShim fresh = FuseShim.start(mp, tmp.resolve("cache"), sock, FuseShim.Options.DEFAULT)) {
        assertThat(Files.isDirectory(mp.resolve("dom"))).isTrue();
        assertThatThrownBy(() -> FuseShim.start(mp, tmp.resolve("cache"), tmp.resolve("c.sock"), FuseShim.Options.DEFAULT))
            .hasMessageContaining("live FUSE mount");
        assertThat(Files.exists(tmp.resolve("c.sock"))).isFalse();
      }
    } finally {
      child.destroyForcibly().waitFor();
      if (Mounts.isMountPoint(mp)) {
        Mounts.umount(mp, Mounts.MNT_DETACH);
      }
    }
    assertThat(Mounts.isMountPoint(mp)).isFalse();
  }

  @Test
  void lookupWithoutDaemon_isEio() throws Exception {
    Path mp = tmp.resolve("mnt");
    try (FuseShim f = FuseShim.start(mp, tmp.resolve("cache"), tmp.resolve("s.sock"), FuseShim.Options.DEFAULT)) {
      assertThatThrownBy(() -> Files.size(mp.resolve("dom/blob"))).isInstanceOf(IOException.class)
          .hasMessageContaining("Input/output error");
      assertThat(List.of(f.shim().stats().lookups())).containsExactly(1L);
    }
  }
}
