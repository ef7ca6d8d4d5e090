package io.lazypull.daemon.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * KernelAnonFd against a regular file standing in for the anon fd (same pwrite/lseek calls),
 * opened with O_DIRECT where the filesystem allows it, so that buffer alignment really matters.
 */
class KernelAnonFdTest {
  private static final int PAGE = 4096;
  private static final int O_DIRECT = 040000; // x86_64 and arm64 generic

  @TempDir Path dir;

  private int openDirect(Path file) throws ErrnoException {
    try {
      return Posix.open(file.toString(), Posix.O_RDWR | Posix.O_CREAT | O_DIRECT, 0600);
    } catch (ErrnoException e) {
      if (e.errno() != Errno.EINVAL) {
        throw e;
      }
      return Posix.open(file.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600); // tmpfs: no O_DIRECT
    }
  }

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  @Test
  void write_alignedDirectBuffer_landsAtOffset() throws IOException {
    Path file = dir.resolve("obj");
    byte[] data = random(3 * PAGE, 1);
    try (KernelAnonFd fd = new KernelAnonFd(openDirect(file), 1)) {
      ByteBuffer buf = KernelAnonFd.allocateAligned(data.length);
      buf.put(data).flip();
      fd.write(2 * PAGE, buf);
      assertEquals(0, buf.position(), "position is not consumed");
    }
    byte[] all = Files.readAllBytes(file);
    assertEquals(5 * PAGE, all.length);
    assertArrayEquals(data, java.util.Arrays.copyOfRange(all, 2 * PAGE, 5 * PAGE));
  }

  @Test
  void write_heapAndMisalignedBuffers_areStagedThroughAlignedMemory() throws IOException {
    Path file = dir.resolve("obj");
    byte[] a = random(PAGE, 2);
    byte[] b = random(2 * PAGE, 3);
    try (KernelAnonFd fd = new KernelAnonFd(openDirect(file), 1)) {
      fd.write(0, ByteBuffer.wrap(a));
      ByteBuffer misaligned = ByteBuffer.allocateDirect(4 * PAGE).alignedSlice(PAGE);
      misaligned.position(1).limit(1 + b.length);
      misaligned.duplicate().put(b);
      assertFalse(KernelAnonFd.isPageAligned(misaligned));
      fd.write(PAGE, misaligned);
    }
    byte[] all = Files.readAllBytes(file);
    assertArrayEquals(a, java.util.Arrays.copyOfRange(all, 0, PAGE));
    assertArrayEquals(b, java.util.Arrays.copyOfRange(all, PAGE, 3 * PAGE));
  }

  @Test
  void write_unalignedOffsetOrPartialPage_isRefused() throws IOException {
    try (KernelAnonFd fd = new KernelAnonFd(openDirect(dir.resolve("obj")), 1)) {
      assertThrows(IllegalArgumentException.class, () -> fd.write(512, KernelAnonFd.allocateAligned(PAGE)));
      assertThrows(IllegalArgumentException.class, () -> fd.write(0, KernelAnonFd.allocateAligned(100)));
    }
  }

  @Test
  void allocateAligned_isPageAligned() {
    for (int size : new int[] {PAGE, 3 * PAGE, 1 << 20}) {
      ByteBuffer b = KernelAnonFd.allocateAligned(size);
      assertTrue(KernelAnonFd.isPageAligned(b));
      assertEquals(size, b.remaining());
    }
  }

  /** Records pwrite calls and answers with scripted counts (-1: the whole remaining length). */
  private static final class ScriptedPwrite implements KernelAnonFd.Pwrite {
    final List<long[]> calls = new ArrayList<>();
    final long[] answers;

    ScriptedPwrite(long... answers) {
      this.answers = answers;
    }

    @Override
    public long pwrite(int fd, ByteBuffer src, long offset) {
      calls.add(new long[] {offset, src.remaining(), src.position()});
      long a = answers[Math.min(calls.size() - 1, answers.length - 1)];
      return a < 0 ? src.remaining() : a;
    }
  }

  @Test
  void writeLoop_reportedCountAboveRequest_countsAsComplete() throws IOException {
    ScriptedPwrite pw = new ScriptedPwrite(4 * PAGE); // a pre-6.13 kernel rounding up
    KernelAnonFd.writeLoop(pw, 9, 1, KernelAnonFd.allocateAligned(2 * PAGE), 8 * PAGE);
    assertEquals(1, pw.calls.size());
  }

  @Test
  void writeLoop_shortWrite_continuesFromLastWholePage() throws IOException {
    ScriptedPwrite pw = new ScriptedPwrite(PAGE + 100, -1);
    KernelAnonFd.writeLoop(pw, 9, 1, KernelAnonFd.allocateAligned(3 * PAGE), 4 * PAGE);
    assertEquals(2, pw.calls.size());
    assertArrayEquals(new long[] {4 * PAGE, 3 * PAGE, 0}, pw.calls.get(0));
    assertArrayEquals(new long[] {5 * PAGE, 2 * PAGE, PAGE}, pw.calls.get(1), "restarts page-aligned");
  }

  @Test
  void writeLoop_noProgress_failsWithEio() {
    ScriptedPwrite pw = new ScriptedPwrite(100);
    ErrnoException e = assertThrows(ErrnoException.class,
        () -> KernelAnonFd.writeLoop(pw, 9, 1, KernelAnonFd.allocateAligned(PAGE), 0));
    assertEquals(Errno.EIO, e.errno());
    assertEquals(4, pw.calls.size());
  }

  @Test
  void seekDataAndHole_reportCachedRanges() throws IOException {
    Path file = dir.resolve("obj");
    try (KernelAnonFd fd = new KernelAnonFd(openDirect(file), 1)) {
      Posix.ftruncate(fd.fd(), 64 * PAGE);
      ByteBuffer buf = KernelAnonFd.allocateAligned(PAGE);
      fd.write(16 * PAGE, buf);
      long data = fd.seekData(0);
      // Filesystems may report the whole file as data (no hole support); ext4 and tmpfs do not.
      if (data == 0) {
        return;
      }
      assertEquals(16 * PAGE, data);
      assertEquals(17 * PAGE, fd.seekHole(16 * PAGE));
      assertEquals(-1, fd.seekData(17 * PAGE));
    }
  }

  @Test
  void completeRead_issuesTheReadCompleteIoctl() throws IOException {
    try (KernelAnonFd fd = new KernelAnonFd(openDirect(dir.resolve("obj")), 1)) {
      // A regular file has no such ioctl: ENOTTY proves the call reached the kernel.
      ErrnoException e = assertThrows(ErrnoException.class, () -> fd.completeRead(7));
      assertEquals(25 /* ENOTTY */, e.errno());
      assertTrue(e.getMessage().contains("0x40049801"), e.getMessage());
    }
  }

  @Test
  void close_isIdempotent_andLaterCallsFailWithEbadf() throws IOException {
    KernelAnonFd fd = new KernelAnonFd(openDirect(dir.resolve("obj")), 1);
    int n = fd.fd();
    fd.close();
    fd.close();
    assertFalse(Posix.isOpen(n) && n == fd.fd());
    assertEquals(-1, fd.fd());
    ErrnoException e = assertThrows(ErrnoException.class, () -> fd.completeRead(1));
    assertEquals(Errno.EBADF, e.errno());
  }
}
