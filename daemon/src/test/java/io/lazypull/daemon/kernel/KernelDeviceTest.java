package io.lazypull.daemon.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.protocol.Message;
import io.lazypull.protocol.MessageCodec;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KernelDevice with a SEQPACKET socket pair standing in for {@code /dev/cachefiles}: one
 * datagram is one read(2), like one message from the kernel, and the commands the device
 * writes arrive as one datagram each, like the kernel's one-command-per-write parsing.
 */
class KernelDeviceTest {
  @TempDir Path dir;
  private UnixSocket kernel; // the test plays the kernel on this end
  private KernelDevice device;

  @BeforeEach
  void setUp() throws IOException {
    UnixSocket[] pair = UnixSocket.pair(UnixSocket.Type.SEQPACKET);
    kernel = pair[0];
    int fd = Posix.dup(pair[1].fd());
    pair[1].release();
    // The real device returns 0 when it has nothing; an idle socket would block instead.
    Posix.setNonBlocking(fd, true);
    device = KernelDevice.adopt(fd); // the device owns the copy
  }

  @AfterEach
  void tearDown() {
    device.close();
    kernel.close();
  }

  private void deliver(Message m) throws IOException {
    kernel.send(MessageCodec.encode(m));
  }

  private String nextCommand() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(4096);
    UnixSocket.Received r = kernel.receive(b);
    return new String(b.array(), 0, r.bytes(), StandardCharsets.ISO_8859_1);
  }

  @Test
  void read_readMessage_becomesReadRequest() throws IOException {
    deliver(new Message.Read(0, 3, 1L << 20, 65536));
    assertTrue(device.awaitReadable(1000));
    Request r = device.read();
    assertEquals(new Request.Read(0, 3, 1L << 20, 65536), r);
    assertNull(device.read(), "one message per read");
  }

  @Test
  void read_open_wrapsTheAnonFdAndMakesItCloseOnExec() throws IOException {
    int anon = Posix.open(dir.resolve("cache-file").toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    String fsid = "a".repeat(64);
    deliver(new Message.Open(5, 1, "erofs," + fsid, fsid, anon, 0));
    assertTrue(device.awaitReadable(1000));
    Request.Open open = assertInstanceOf(Request.Open.class, device.read());
    assertEquals(5, open.msgId());
    assertEquals(1, open.objectId());
    assertEquals("erofs," + fsid, open.volumeKey());
    assertEquals(fsid, open.cookieKey());
    KernelAnonFd fd = assertInstanceOf(KernelAnonFd.class, open.anonFd());
    assertEquals(anon, fd.fd());
    assertTrue(closeOnExec(anon), "FD_CLOEXEC set on the anon fd");
    fd.close();
    assertFalse(Posix.isOpen(anon));
  }

  @Test
  void read_close_becomesCloseRequest_andIsCounted() throws IOException {
    deliver(new Message.Close(9, 4));
    deliver(new Message.Read(10, 4, 0, 4096));
    assertTrue(device.awaitReadable(1000));
    assertEquals(new Request.Close(9, 4), device.read());
    assertEquals(new Request.Read(10, 4, 0, 4096), device.read());
    assertArrayEquals(new long[] {0, 1, 1}, device.counts());
  }

  @Test
  void read_lengthMismatch_refusesTheOpenAndClosesItsFd() throws IOException {
    int anon = Posix.open(dir.resolve("cache-file").toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    ByteBuffer msg = MessageCodec.encode(new Message.Open(12, 2, "erofs,x", "y", anon, 0));
    msg.order(ByteOrder.nativeOrder()).putInt(8, msg.remaining() + 1); // header len != bytes read
    kernel.send(msg);
    assertTrue(device.awaitReadable(1000));
    assertNull(device.read());
    assertEquals("copen 12,-22", nextCommand());
    assertFalse(Posix.isOpen(anon), "the refused OPEN's fd is closed");
  }

  @Test
  void awaitReadable_nothingQueued_timesOut() throws IOException {
    assertFalse(device.awaitReadable(20));
  }

  @Test
  void copen_isOneWriteOfTheCommand_msgIdUnsigned() throws IOException {
    device.copen(7, 1048576);
    assertEquals("copen 7,1048576", nextCommand());
    device.copenError(8, Errno.ENOENT);
    assertEquals("copen 8,-2", nextCommand());
    device.copen(-1, 0);
    assertEquals("copen 4294967295,0", nextCommand());
    assertThrows(IllegalArgumentException.class, () -> device.copen(1, -5));
  }

  @Test
  void restore_isWrittenOnce() throws IOException {
    device.restore();
    assertEquals("restore", nextCommand());
    assertThrows(IllegalStateException.class, () -> device.restore());
  }

  @Test
  void close_isIdempotent_andTheDeviceIsThenDead() throws IOException {
    int fd = device.fd();
    device.close();
    device.close();
    assertFalse(Posix.isOpen(fd) && device.fd() == fd);
    assertThrows(DeviceDeadException.class, () -> device.awaitReadable(10));
    assertThrows(DeviceDeadException.class, () -> device.read());
    assertThrows(DeviceDeadException.class, () -> device.copen(1, 1));
  }

  @Test
  void awaitReadable_peerHungUp_isDeviceDead() {
    kernel.close();
    assertThrows(DeviceDeadException.class, () -> device.awaitReadable(1000));
  }

  @Test
  void backoff_growsThenCaps() {
    assertEquals(0, KernelDevice.backoffMillis(0));
    assertEquals(1, KernelDevice.backoffMillis(1));
    assertEquals(2, KernelDevice.backoffMillis(2));
    assertEquals(32, KernelDevice.backoffMillis(6));
    assertEquals(KernelDevice.MAX_BACKOFF_MILLIS, KernelDevice.backoffMillis(7));
    assertEquals(KernelDevice.MAX_BACKOFF_MILLIS, KernelDevice.backoffMillis(16));
  }

  @Test
  void readBuffer_isAlignedAndAboveTheKernelMaximum() {
    assertTrue(KernelDevice.READ_BUFFER_SIZE >= MessageCodec.MSG_MAX_SIZE);
    assertTrue(KernelAnonFd.isPageAligned(KernelAnonFd.allocateAligned(KernelDevice.READ_BUFFER_SIZE)));
  }

  @Test
  void open_noSuchDevice_saysTheKernelLacksCachefiles() {
    ErrnoException e = assertThrows(ErrnoException.class,
        () -> KernelDevice.open(dir.resolve("no-cachefiles").toString(), dir.resolve("cache"), null));
    assertEquals(Errno.ENOENT, e.errno());
    assertTrue(e.getMessage().contains("CONFIG_CACHEFILES"), e.getMessage());
  }

  @Test
  void open_commandsAreWrittenOneEach_inOrder() throws IOException {
    // A FIFO stands in for the device node: open(O_RDWR) works, each command is one write.
    Path fifo = dir.resolve("cachefiles");
    Posix.mknod(fifo.toString(), Posix.S_IFIFO | 0600, 0, 0);
    int reader = Posix.open(fifo.toString(), Posix.O_RDWR, 0);
    try (KernelDevice d = KernelDevice.open(fifo.toString(), dir.resolve("cache"), "lazypull")) {
      ByteBuffer b = ByteBuffer.allocate(4096);
      Posix.read(reader, b);
      String written = new String(b.array(), 0, b.position(), StandardCharsets.ISO_8859_1);
      assertEquals("dir " + dir.resolve("cache") + "tag lazypullbind ondemand", written);
      assertTrue(Files.isDirectory(dir.resolve("cache")), "the cache dir is created");
    } finally {
      Posix.closeQuietly(reader);
    }
  }

  /** FD_CLOEXEC as the kernel reports it: fdinfo's flags carry O_CLOEXEC (02000000). */
  private static boolean closeOnExec(int fd) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd))) {
      if (line.startsWith("flags:")) {
        return (Long.parseLong(line.substring(6).trim(), 8) & 02000000) != 0;
      }
    }
    throw new AssertionError("no flags in fdinfo of " + fd);
  }
}
