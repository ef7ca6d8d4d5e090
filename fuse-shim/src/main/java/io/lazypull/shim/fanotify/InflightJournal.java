package io.lazypull.shim.fanotify;

import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Posix;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/*
 * Why a journal: the kernel matches a response to its permission event by the NUMBER of the
 * event's fd in the reader's fd table (fanotify_user.c process_access_response compares
 * event->fd with response.fd, first match in the access list), not by the open file. When a
 * relay dies, events it had read stay in the group's access list (the group lives on in a
 * holder), unreadable again; their readers wait. A successor that knows the numbers and ranges
 * can fill the ranges and answer them. This file tells it:
 *
 *   slot i (64 bytes) describes the pending event whose fd number is i
 *     0  u32 magic    SLOT_MAGIC when the slot describes a pending event, 0 when free
 *     4  i32 fd       == i
 *     8  u32 dev major, 12 u32 dev minor, 16 u64 ino   the file (statx of the event fd)
 *    24  u64 offset, 32 u64 count                       the event's range (-1, 0: none)
 *    40  i32 pid                                        who read
 *
 * Order of operations, so that a slot never describes an event already answered:
 *   read(2) -> record (pwrite) -> ... -> clear (pwrite) -> respond -> close(event fd)
 * A relay killed between read(2) and record leaves that event unanswered and unknown: its
 * reader waits until killed (fanotify permission waits are killable) -- never zeros.
 * Process death does not lose page-cache writes, so no fsync: a machine crash takes the
 * mounts and the group with it anyway.
 */

/** The relay's record of the permission events it has read and not answered yet. */
final class InflightJournal implements AutoCloseable {
  static final String FILE_NAME = ".relay-inflight";
  static final int SLOT = 64;
  static final int SLOT_MAGIC = 0x4c5a504a; // "LZPJ"

  /** One pending event a dead relay left behind. */
  record Entry(int fd, Posix.FileId file, long offset, long count, int pid) {}

  private final Path path;
  private final int fd;

  private InflightJournal(Path path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  /** Opens (creating it) the journal in {@code cacheDir}. */
  static InflightJournal open(Path cacheDir) throws ErrnoException {
    Path p = cacheDir.resolve(FILE_NAME);
    return new InflightJournal(p, Posix.open(p.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600));
  }

  Path path() {
    return path;
  }

  void record(int eventFd, Posix.FileId file, long offset, long count, int pid) throws ErrnoException {
    ByteBuffer b = ByteBuffer.allocateDirect(SLOT).order(ByteOrder.nativeOrder());
    b.putInt(0, SLOT_MAGIC).putInt(4, eventFd).putInt(8, file.devMajor()).putInt(12, file.devMinor())
        .putLong(16, file.ino()).putLong(24, offset).putLong(32, count).putInt(40, pid);
    Posix.pwriteFully(fd, b, (long) eventFd * SLOT);
  }

  void clear(int eventFd) throws ErrnoException {
    ByteBuffer b = ByteBuffer.allocateDirect(4).order(ByteOrder.nativeOrder()).putInt(0, 0);
    Posix.pwriteFully(fd, b, (long) eventFd * SLOT);
  }

  /** The slots in use (a dead relay's pending events), skipping the file's holes. */
  List<Entry> pending() throws ErrnoException {
    List<Entry> out = new ArrayList<>();
    long end = Posix.lseek(fd, 0, Posix.SEEK_END);
    ByteBuffer b = ByteBuffer.allocateDirect(1 << 16).order(ByteOrder.nativeOrder());
    long pos = 0;
    while (pos < end) {
      long data = Posix.seekData(fd, pos);
      if (data < 0) {
        break;
      }
      long hole = Posix.seekHole(fd, data);
      for (long off = data / SLOT * SLOT; off < hole; off += b.capacity()) {
        b.clear();
        int n = Posix.pread(fd, b, off);
        for (int i = 0; i + SLOT <= n; i += SLOT) {
          if (b.getInt(i) == SLOT_MAGIC && b.getInt(i + 4) == (off + i) / SLOT) {
            out.add(new Entry(b.getInt(i + 4), new Posix.FileId(b.getInt(i + 8), b.getInt(i + 12), b.getLong(i + 16)),
                b.getLong(i + 24), b.getLong(i + 32), b.getInt(i + 40)));
          }
        }
      }
      pos = hole;
    }
    return out;
  }

  /** Empties the journal (a fresh group: nothing of a predecessor can be answered). */
  void reset() throws ErrnoException {
    Posix.ftruncate(fd, 0);
  }

  @Override
  public void close() {
    Posix.closeQuietly(fd);
  }
}
