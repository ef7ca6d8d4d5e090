package io.lazypull.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.testing.Requirements;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FanotifyTest {
  @TempDir Path tmp;

  /** One event as the kernel lays it out: metadata, then an unknown record, then a range. */
  private static ByteBuffer event(long mask, int fd, int pid, long offset, long count) {
    ByteBuffer b = ByteBuffer.allocate(24 + 8 + 24).order(ByteOrder.nativeOrder());
    b.putInt(b.capacity()).put((byte) 3).put((byte) 0).putShort((short) 24).putLong(mask).putInt(fd).putInt(pid);
    b.put((byte) 99).put((byte) 0).putShort((short) 8).putInt(0); // an info type this parser does not know
    b.put((byte) 6).put((byte) 0).putShort((short) 24).putInt(0).putLong(offset).putLong(count);
    return b.flip();
  }

  @Test
  void parse_twoEventsInOneRead_rangesAndUnknownRecords() throws Exception {
    ByteBuffer two = ByteBuffer.allocate(112).put(event(Fanotify.FAN_PRE_ACCESS, 7, 42, 8192, 4096))
        .put(event(Fanotify.FAN_PRE_ACCESS, 8, 43, 1 << 20, 262144)).flip();
    List<Fanotify.Event> events = Fanotify.parse(two);
    assertThat(events).containsExactly(new Fanotify.Event(Fanotify.FAN_PRE_ACCESS, 7, 42, 8192, 4096),
        new Fanotify.Event(Fanotify.FAN_PRE_ACCESS, 8, 43, 1 << 20, 262144));
    assertThat(two.position()).isZero(); // parse does not consume
  }

  @Test
  void parse_truncatedOrBadLengths_areErrors() {
    ByteBuffer e = event(Fanotify.FAN_PRE_ACCESS, 7, 42, 0, 4096);
    assertThatThrownBy(() -> Fanotify.parse(e.duplicate().limit(40)))
        .isInstanceOf(Fanotify.MalformedEventException.class).hasMessageContaining("event_len 56");
    ByteBuffer badRecord = event(Fanotify.FAN_PRE_ACCESS, 7, 42, 0, 4096);
    badRecord.putShort(24 + 2, (short) 2);
    assertThatThrownBy(() -> Fanotify.parse(badRecord)).hasMessageContaining("info record type 99 len 2");
    ByteBuffer badVersion = event(Fanotify.FAN_PRE_ACCESS, 7, 42, 0, 4096);
    badVersion.put(4, (byte) 4);
    assertThatThrownBy(() -> Fanotify.parse(badVersion)).hasMessageContaining("metadata version 4");
  }

  @Test
  void denyErrno_isTheUapiMacro() {
    assertThat(Fanotify.denyErrno(Errno.EIO)).isEqualTo(0x05000002);
  }

  /**
   * The kernel side, as lazypull's fanotify front end relies on it: a read of a marked sparse
   * file blocks, the event names the reader and the page range, a write through an fd opened
   * BEFORE the mark raises no event (this is how the daemon fills cache files), FAN_ALLOW
   * releases the reader with the written bytes and FAN_DENY_ERRNO(EIO) fails it with EIO.
   */
  @Test
  void probe_onTmpfs_saysTheFilesystemLacksPreContentEvents_notTheKernel() throws Exception {
    Requirements.assumeRoot();
    Requirements.skipUnless(Fanotify.probePreContent(tmp) == null,
        "needs fanotify pre-content events on " + tmp + " to tell a filesystem apart from the kernel");
    Path mnt = Files.createDirectories(tmp.resolve("tmpfs"));
    Mounts.mount("tmpfs", mnt.toString(), "tmpfs", 0, "size=1m");
    try {
      String why = Fanotify.probePreContent(mnt);
      assertThat(why).contains("the filesystem of " + mnt + " (tmpfs) does not support fanotify pre-content events")
          .contains("EOPNOTSUPP").doesNotContain("6.14");
    } finally {
      Mounts.umount(mnt, Mounts.MNT_DETACH);
    }
  }

  @Test
  void preAccess_blocksTheReader_untilAnswered() throws Exception {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    Path f = tmp.resolve("sparse");
    int writer = Posix.open(f.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    int group = Fanotify.init(Fanotify.FAN_CLOEXEC | Fanotify.FAN_CLASS_PRE_CONTENT | Fanotify.FAN_UNLIMITED_QUEUE,
        Posix.O_RDONLY | 0100000 /* O_LARGEFILE */);
    try {
      Posix.ftruncate(writer, 1 << 20);
      Fanotify.markFd(group, Fanotify.FAN_MARK_ADD, Fanotify.FAN_PRE_ACCESS, writer);

      CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> readAt(f, 5000, 100));
      Fanotify.Event e = nextEvent(group);
      assertThat(read).isNotDone();
      assertThat(e.mask()).isEqualTo(Fanotify.FAN_PRE_ACCESS);
      assertThat(e.pid()).isEqualTo((int) ProcessHandle.current().pid());
      assertThat(e.offset()).isLessThanOrEqualTo(5000);
      assertThat(e.offset() + e.count()).isGreaterThanOrEqualTo(5100);
      assertThat(Posix.fileId(e.fd())).isEqualTo(Posix.fileId(writer));
      ByteBuffer data = ByteBuffer.allocateDirect(8192);
      while (data.hasRemaining()) {
        data.put((byte) 'x');
      }
      Posix.pwriteFully(writer, data.flip(), 4096); // no event: the fd predates the mark
      assertThat(Posix.poll(new int[] {group}, new short[] {Posix.POLLIN}, 200)[0]).isZero();
      Fanotify.respond(group, e.fd(), Fanotify.FAN_ALLOW);
      Posix.close(e.fd());
      assertThat(new String(read.get(10, TimeUnit.SECONDS))).isEqualTo("x".repeat(100));

      CompletableFuture<byte[]> denied = CompletableFuture.supplyAsync(() -> readAt(f, 1 << 19, 10));
      Fanotify.Event d = nextEvent(group);
      Fanotify.respond(group, d.fd(), Fanotify.denyErrno(Errno.EIO));
      Posix.close(d.fd());
      assertThatThrownBy(() -> denied.get(10, TimeUnit.SECONDS)).hasMessageContaining("Input/output error");
    } finally {
      Posix.close(group);
      Posix.close(writer);
    }
  }

  /**
   * What the fanotify front end's design rests on, measured (docs/fanotify.md): whether a file
   * raises pre-content events is decided when it is opened. An fd opened before the mark never
   * raises any (reads of holes return zeros at once: the EROFS mount must come after the mark);
   * one opened after it raises them for writes too (a writer that waits on the listener that
   * waits on it would deadlock).
   */
  @Test
  void kernel_eventsDependOnWhenTheFileWasOpened() throws Exception {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    Path f = tmp.resolve("sparse");
    int before = Posix.open(f.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    Posix.ftruncate(before, 1 << 20);
    int group = Fanotify.init(Fanotify.FAN_CLOEXEC | Fanotify.FAN_CLASS_PRE_CONTENT, Posix.O_RDONLY);
    int after = -1;
    try {
      Fanotify.markFd(group, Fanotify.FAN_MARK_ADD, Fanotify.FAN_PRE_ACCESS, before);
      ByteBuffer b = ByteBuffer.allocateDirect(4096);
      assertThat(Posix.pread(before, b, 8192)).isEqualTo(4096); // no event: opened before the mark
      assertThat(Posix.poll(new int[] {group}, new short[] {Posix.POLLIN}, 100)[0]).isZero();

      after = Posix.open(f.toString(), Posix.O_RDWR, 0);
      int writer = after;
      CompletableFuture<Integer> write = CompletableFuture.supplyAsync(() -> {
        try {
          return Posix.pwrite(writer, ByteBuffer.allocateDirect(4096), 65536);
        } catch (ErrnoException e) {
          throw new java.io.UncheckedIOException(e);
        }
      });
      Fanotify.Event e = nextEvent(group);
      assertThat(e.offset()).isEqualTo(65536);
      assertThat(write).isNotDone(); // the write waits for the listener
      Fanotify.respond(group, e.fd(), Fanotify.FAN_ALLOW);
      Posix.close(e.fd());
      assertThat(write.get(10, TimeUnit.SECONDS)).isEqualTo(4096);
    } finally {
      Posix.closeQuietly(after);
      Posix.close(group);
      Posix.close(before);
    }
  }

  /**
   * Measured: the kernel matches a response to its event by the NUMBER of the event's fd, among
   * the events read and not answered; closing the fd (as a listener's death does) does not
   * answer it, and the group's other holders can answer it by number. When the group's last fd
   * closes, every pending event is allowed: the reader reads the hole as zeros. And this kernel
   * knows no other fanotify_init flags (no restartable events, no response ids).
   */
  @Test
  void kernel_pendingEvents_answeredByNumber_allowedWhenTheGroupGoes() throws Exception {
    Requirements.assumeRoot();
    String why = Fanotify.probePreContent(tmp);
    Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    Path f = tmp.resolve("sparse");
    int writer = Posix.open(f.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    Posix.ftruncate(writer, 1 << 20);
    int group = Fanotify.init(Fanotify.FAN_CLOEXEC | Fanotify.FAN_CLASS_PRE_CONTENT, Posix.O_RDONLY);
    boolean groupClosed = false;
    try {
      Fanotify.markFd(group, Fanotify.FAN_MARK_ADD, Fanotify.FAN_PRE_ACCESS, writer);
      CompletableFuture<byte[]> r1 = CompletableFuture.supplyAsync(() -> readAt(f, 0, 16));
      Fanotify.Event e = nextEvent(group);
      int number = e.fd();
      Posix.close(e.fd()); // the listener "dies" with it
      Thread.sleep(300);
      assertThat(r1).as("closing the event's fd does not answer it").isNotDone();
      assertThatThrownBy(() -> Fanotify.respond(group, number + 1000, Fanotify.FAN_ALLOW))
          .isInstanceOfSatisfying(ErrnoException.class, x -> assertThat(x.errno()).isEqualTo(Errno.ENOENT));
      ByteBuffer data = ByteBuffer.allocateDirect(4096);
      while (data.hasRemaining()) {
        data.put((byte) 'y');
      }
      Posix.pwriteFully(writer, data.flip(), 0);
      Fanotify.respond(group, number, Fanotify.FAN_ALLOW); // by number only
      assertThat(new String(r1.get(10, TimeUnit.SECONDS))).isEqualTo("y".repeat(16));

      CompletableFuture<byte[]> r2 = CompletableFuture.supplyAsync(() -> readAt(f, 1 << 19, 16));
      Fanotify.Event pending = nextEvent(group);
      groupClosed = true;
      Posix.close(group); // the last fd of the group: pending events are allowed
      assertThat(r2.get(10, TimeUnit.SECONDS)).containsOnly((byte) 0);
      Posix.closeQuietly(pending.fd());
    } finally {
      if (!groupClosed) {
        Posix.closeQuietly(group);
      }
      Posix.close(writer);
    }
    for (int bit = 15; bit < 32; bit++) {
      int flag = 1 << bit;
      assertThatThrownBy(() -> Fanotify.init(Fanotify.FAN_CLASS_PRE_CONTENT | flag, Posix.O_RDONLY))
          .as("fanotify_init flag 0x%x", flag)
          .isInstanceOfSatisfying(ErrnoException.class, x -> assertThat(x.errno()).isEqualTo(Errno.EINVAL));
    }
  }

  private static Fanotify.Event nextEvent(int group) throws Exception {
    assertThat(Posix.poll(new int[] {group}, new short[] {Posix.POLLIN}, 10_000)[0]).isNotZero();
    ByteBuffer buf = ByteBuffer.allocateDirect(4096);
    Posix.read(group, buf);
    List<Fanotify.Event> events = Fanotify.parse(buf.flip());
    assertThat(events).hasSize(1);
    return events.get(0);
  }

  private static byte[] readAt(Path f, long offset, int len) {
    try {
      int fd = Posix.open(f.toString(), Posix.O_RDONLY, 0);
      try {
        ByteBuffer b = ByteBuffer.allocate(len);
        Posix.pread(fd, b, offset);
        return b.array();
      } finally {
        Posix.close(fd);
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }
}
