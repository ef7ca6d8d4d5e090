package io.lazypull.sys;

import com.sun.jna.Native;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * fanotify(7) for pre-content events (Linux 6.14+): the group, marks, the events read from the
 * group fd and the responses written to it. Values from include/uapi/linux/fanotify.h (6.14+;
 * the C library's headers may predate them).
 *
 * <pre>
 * struct fanotify_event_metadata (24 bytes)       struct fanotify_event_info_range (24 bytes)
 *   0  u32 event_len   (this event, info records)    0  u8  info_type (6 = RANGE)
 *   4  u8  vers        (3)                            1  u8  pad
 *   5  u8  reserved                                   2  u16 len       (24)
 *   6  u16 metadata_len (24)                          4  u32 pad
 *   8  u64 mask                                       8  u64 offset
 *  16  s32 fd          (an fd of the file, opened    16  u64 count
 *                       for us, FMODE_NONOTIFY)
 *  20  s32 pid
 *  24  info records, each {u8 type, u8 pad, u16 len, ...}, until event_len
 *
 * struct fanotify_response (8 bytes): s32 fd, u32 response
 * </pre>
 */
public final class Fanotify {
  // fanotify_init flags
  public static final int FAN_CLOEXEC = 0x1;
  public static final int FAN_NONBLOCK = 0x2;
  public static final int FAN_CLASS_PRE_CONTENT = 0x8;
  /** No limit on queued events: on overflow the kernel drops (allows!) permission events. */
  public static final int FAN_UNLIMITED_QUEUE = 0x10;
  public static final int FAN_UNLIMITED_MARKS = 0x20;

  // fanotify_mark flags (inode marks: FAN_MARK_INODE is 0)
  public static final int FAN_MARK_ADD = 0x1;
  public static final int FAN_MARK_REMOVE = 0x2;
  public static final int FAN_MARK_FLUSH = 0x80;

  // event masks
  public static final long FAN_Q_OVERFLOW = 0x4000L;
  /** Pre-content access hook: a range of the file is about to be read (or written). */
  public static final long FAN_PRE_ACCESS = 0x100000L;

  // responses
  public static final int FAN_ALLOW = 0x1;
  public static final int FAN_DENY = 0x2;

  public static final int METADATA_VERSION = 3;
  public static final int METADATA_LEN = 24;
  public static final int INFO_TYPE_RANGE = 6;
  public static final int RANGE_INFO_LEN = 24;
  /** No fd in the event (overflow). */
  public static final int FAN_NOFD = -1;

  private Fanotify() {}

  /**
   * {@code FAN_DENY_ERRNO(errno)}: deny with this errno instead of EPERM (pre-content groups,
   * Linux 6.14+; the kernel accepts EIO, EPERM, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT).
   */
  public static int denyErrno(int errno) {
    return FAN_DENY | ((errno & 0xff) << 24);
  }

  /** One event of a read(2) of the group: its mask, its fd, who caused it and the range. */
  public record Event(long mask, int fd, int pid, long offset, long count) {
    /** True if the event carries a range record (pre-content events of reads and writes). */
    public boolean hasRange() {
      return offset >= 0;
    }

    @Override
    public String toString() {
      return String.format("event{mask 0x%x, fd %d, pid %d%s}", mask, fd, pid,
          hasRange() ? ", [" + offset + ", " + (offset + count) + ")" : "");
    }
  }

  /** A malformed event buffer (a kernel newer than this parser, or a bug). */
  public static final class MalformedEventException extends IOException {
    MalformedEventException(String message) {
      super(message);
    }
  }

  /** fanotify_init(2). */
  public static int init(int flags, int eventFlags) throws ErrnoException {
    int fd = LibC.fanotify_init(flags, eventFlags);
    if (fd < 0) {
      throw new ErrnoException("fanotify_init", Native.getLastError(), String.format("flags 0x%x", flags));
    }
    return fd;
  }

  /** fanotify_mark(2) of the file open as {@code fd} (an inode mark; no path is looked up). */
  public static void markFd(int group, int flags, long mask, int fd) throws ErrnoException {
    if (LibC.fanotify_mark(group, flags, mask, fd, null) < 0) {
      throw new ErrnoException("fanotify_mark", Native.getLastError(),
          String.format("flags 0x%x mask 0x%x fd %d", flags, mask, fd));
    }
  }

  /** fanotify_mark(2) of {@code path} (relative paths from the working directory). */
  public static void mark(int group, int flags, long mask, String path) throws ErrnoException {
    if (LibC.fanotify_mark(group, flags, mask, -100 /* AT_FDCWD */, path) < 0) {
      throw new ErrnoException("fanotify_mark", Native.getLastError(),
          String.format("flags 0x%x mask 0x%x %s", flags, mask, path));
    }
  }

  /** struct fanotify_response, one per thread: a relay answers an event per read. */
  private static final ThreadLocal<ByteBuffer> RESPONSE =
      ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder()));

  /** Writes the response to the permission event whose fd is {@code fd}. */
  public static void respond(int group, int fd, int response) throws ErrnoException {
    ByteBuffer b = RESPONSE.get().clear();
    b.putInt(0, fd).putInt(4, response);
    int n = Posix.write(group, b);
    if (n != 8) {
      throw new ErrnoException("write(fanotify_response)", Errno.EIO, "fd " + fd + ": wrote " + n + " bytes");
    }
  }

  /**
   * Reads what is queued on a non-blocking group (at most what fits in {@code buf}) and parses
   * it; empty when nothing is queued (EAGAIN).
   *
   * @throws MalformedEventException if the kernel's bytes cannot be parsed (nothing can be
   *     answered then: their readers wait until killed)
   */
  public static List<Event> read(int group, ByteBuffer buf) throws IOException {
    buf.clear();
    int n;
    try {
      n = Posix.read(group, buf);
    } catch (ErrnoException e) {
      if (e.errno() == Errno.EAGAIN) {
        return List.of();
      }
      throw e;
    }
    if (n <= 0) {
      return List.of();
    }
    try {
      return parse(buf.flip());
    } catch (MalformedEventException e) {
      throw new MalformedEventException("cannot parse " + n + " bytes of events: " + e.getMessage());
    }
  }

  /**
   * Answers {@code response} to every permission event that was read with an fd number below
   * {@code limit} and not answered yet: those a dead listener had read. The kernel matches a
   * response by the fd number the event was read with, not by the fd itself (measured: see
   * docs/fanotify.md), so a listener's pending events outlive it, answerable by number. Only
   * for a group no live process reads (another reader's events would be answered too). Returns
   * how many events were answered.
   */
  public static int answerEveryFdBelow(int group, long limit, int response) throws ErrnoException {
    int answered = 0;
    try (com.sun.jna.Memory m = new com.sun.jna.Memory(8)) {
      m.setInt(4, response);
      for (int fd = 0; fd < limit; fd++) {
        m.setInt(0, fd);
        if (LibC.write(group, m, 8) == 8) {
          answered++;
          continue;
        }
        int errno = Native.getLastError();
        if (errno != Errno.ENOENT) {
          throw new ErrnoException("write(fanotify_response)", errno, "fd " + fd);
        }
      }
    }
    return answered;
  }

  /**
   * Whether pre-content events work here: a {@code FAN_CLASS_PRE_CONTENT} group (needs
   * CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS) marks a scratch file in {@code dir}
   * with {@code FAN_PRE_ACCESS} (Linux 6.14+, and a filesystem that supports it). Returns null if
   * it does, else why not.
   */
  public static String probePreContent(java.nio.file.Path dir) {
    int group;
    try {
      group = init(FAN_CLOEXEC | FAN_CLASS_PRE_CONTENT, Posix.O_RDONLY);
    } catch (ErrnoException e) {
      return "no fanotify pre-content group: " + e.getMessage();
    }
    java.nio.file.Path probe = null;
    try {
      probe = java.nio.file.Files.createTempFile(dir, ".fanotify-probe", "");
      int fd = Posix.open(probe.toString(), Posix.O_RDONLY, 0);
      try {
        markFd(group, FAN_MARK_ADD, FAN_PRE_ACCESS, fd);
      } finally {
        Posix.closeQuietly(fd);
      }
      return null;
    } catch (ErrnoException e) {
      return whyNoMark(dir, e);
    } catch (IOException e) {
      return "cannot create a probe file in " + dir + ": " + e.getMessage();
    } finally {
      Posix.closeQuietly(group);
      if (probe != null) {
        try {
          java.nio.file.Files.deleteIfExists(probe);
        } catch (IOException e) {
          // a leftover empty dot file
        }
      }
    }
  }

  /**
   * Why a FAN_PRE_ACCESS mark failed, from its errno: the kernel does not know the event bit
   * (EINVAL, before Linux 6.14) or the filesystem has not opted into pre-content events
   * (EOPNOTSUPP: tmpfs, overlayfs, NFS ...; ext4, xfs and btrfs have).
   */
  private static String whyNoMark(java.nio.file.Path dir, ErrnoException e) {
    String fs = fileSystemType(dir);
    if (e.errno() == Errno.EOPNOTSUPP) {
      return "the filesystem of " + dir + " (" + fs + ") does not support fanotify pre-content events"
          + " (FAN_PRE_ACCESS mark: EOPNOTSUPP); use a cache directory on ext4, xfs or btrfs";
    }
    if (e.errno() == Errno.EINVAL) {
      return "this kernel (" + System.getProperty("os.version") + ") does not know FAN_PRE_ACCESS"
          + " (mark on " + fs + ": EINVAL): Linux 6.14+ needed";
    }
    return "a FAN_PRE_ACCESS mark on " + dir + " (" + fs + ") fails: " + e.getMessage();
  }

  private static String fileSystemType(java.nio.file.Path dir) {
    try {
      return java.nio.file.Files.getFileStore(dir).type();
    } catch (IOException e) {
      return "filesystem type unknown";
    }
  }

  /**
   * The events in {@code buf} (position to limit: what one read(2) returned). Unknown info
   * records are skipped; a range record gives the event its offset and count.
   */
  public static List<Event> parse(ByteBuffer buf) throws MalformedEventException {
    ByteBuffer b = buf.duplicate().order(ByteOrder.nativeOrder());
    List<Event> out = new ArrayList<>();
    while (b.remaining() > 0) {
      int start = b.position();
      if (b.remaining() < METADATA_LEN) {
        throw new MalformedEventException("truncated event metadata: " + b.remaining() + " bytes at " + start);
      }
      long eventLen = Integer.toUnsignedLong(b.getInt(start));
      int vers = b.get(start + 4) & 0xff;
      int metaLen = b.getShort(start + 6) & 0xffff;
      if (vers != METADATA_VERSION) {
        throw new MalformedEventException("event at " + start + ": metadata version " + vers + ", expected " + METADATA_VERSION);
      }
      if (metaLen < METADATA_LEN || eventLen < metaLen || eventLen > b.remaining()) {
        throw new MalformedEventException("event at " + start + ": event_len " + eventLen + ", metadata_len "
            + metaLen + ", " + b.remaining() + " bytes left");
      }
      long mask = b.getLong(start + 8);
      int fd = b.getInt(start + 16);
      int pid = b.getInt(start + 20);
      long offset = -1;
      long count = 0;
      int end = start + (int) eventLen;
      for (int i = start + metaLen; i < end; ) {
        if (end - i < 4) {
          throw new MalformedEventException("event at " + start + ": truncated info header at " + i);
        }
        int type = b.get(i) & 0xff;
        int len = b.getShort(i + 2) & 0xffff;
        if (len < 4 || i + len > end) {
          throw new MalformedEventException("event at " + start + ": info record type " + type + " len " + len + " at " + i);
        }
        if (type == INFO_TYPE_RANGE) {
          if (len < RANGE_INFO_LEN) {
            throw new MalformedEventException("event at " + start + ": range record of " + len + " bytes");
          }
          offset = b.getLong(i + 8);
          count = b.getLong(i + 16);
        }
        i += len;
      }
      out.add(new Event(mask, fd, pid, offset, count));
      b.position(end);
    }
    return out;
  }
}
