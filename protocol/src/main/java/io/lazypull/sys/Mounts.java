package io.lazypull.sys;

import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * mount(2) and umount2(2) for EROFS. util-linux {@code mount} on Debian 12 always puts a loop
 * device under a regular-file source, and then {@code device=} files fail; lazypull calls
 * mount(2) itself for true file-backed mounts.
 */
public final class Mounts {
  public static final long MS_RDONLY = 1;
  public static final long MS_NOSUID = 2;
  public static final long MS_NODEV = 4;
  public static final int MNT_FORCE = 1;
  public static final int MNT_DETACH = 2;

  private Mounts() {}

  /**
   * A file-backed EROFS mount (Linux 6.12+): {@code image} is the primary device (the meta
   * blob or a full image), {@code devices} are the extra devices in device-table order.
   */
  public static void mountErofs(Path image, Path target, List<Path> devices) throws ErrnoException {
    StringBuilder data = new StringBuilder();
    for (Path d : devices) {
      String abs = d.toAbsolutePath().toString();
      if (abs.contains(",")) {
        // mount(2) splits its options at commas; fsconfig(2) takes each value whole.
        mountErofsFsconfig(image, target, devices);
        return;
      }
      data.append(data.length() == 0 ? "" : ",").append("device=").append(abs);
    }
    mount(image.toAbsolutePath().toString(), target.toAbsolutePath().toString(), "erofs",
        MS_RDONLY, data.toString());
  }

  private static final long SYS_MOVE_MOUNT = 429;
  private static final long SYS_FSOPEN = 430;
  private static final long SYS_FSCONFIG = 431;
  private static final long SYS_FSMOUNT = 432;
  private static final int FSCONFIG_SET_FLAG = 0;
  private static final int FSCONFIG_SET_STRING = 1;
  private static final int FSCONFIG_CMD_CREATE = 6;
  private static final int MOVE_MOUNT_F_EMPTY_PATH = 4;

  /**
   * The same file-backed mount through the new mount API (Linux 5.2+; the syscall numbers are
   * the same on every architecture): fsopen, fsconfig source / device / ro, create, fsmount,
   * move_mount. Used when a path holds a comma, which mount(2)'s option string cannot carry.
   */
  private static void mountErofsFsconfig(Path image, Path target, List<Path> devices) throws ErrnoException {
    String what = "erofs " + image + " on " + target + " (fsconfig, devices " + devices + ")";
    try (CStrings c = new CStrings()) {
      int fs = (int) sys("fsopen", what, SYS_FSOPEN, c.of("erofs"), 1 /* FSOPEN_CLOEXEC */, 0, 0, 0);
      int mnt = -1;
      try {
        sys("fsconfig source", what, SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, c.of("source"),
            c.of(image.toAbsolutePath().toString()), 0);
        for (Path d : devices) {
          sys("fsconfig device", what, SYS_FSCONFIG, fs, FSCONFIG_SET_STRING, c.of("device"),
              c.of(d.toAbsolutePath().toString()), 0);
        }
        sys("fsconfig ro", what, SYS_FSCONFIG, fs, FSCONFIG_SET_FLAG, c.of("ro"), 0, 0);
        sys("fsconfig create", what, SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
        mnt = (int) sys("fsmount", what, SYS_FSMOUNT, fs, 1 /* FSMOUNT_CLOEXEC */, 1 /* MOUNT_ATTR_RDONLY */, 0, 0);
        sys("move_mount", what, SYS_MOVE_MOUNT, mnt, c.of(""), -100 /* AT_FDCWD */,
            c.of(target.toAbsolutePath().toString()), MOVE_MOUNT_F_EMPTY_PATH);
      } finally {
        Posix.closeQuietly(mnt);
        Posix.closeQuietly(fs);
      }
    }
  }

  /** C strings for one call sequence, freed together. */
  private static final class CStrings implements AutoCloseable {
    private final List<com.sun.jna.Memory> strings = new ArrayList<>();

    long of(String s) {
      byte[] b = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
      com.sun.jna.Memory m = new com.sun.jna.Memory(b.length + 1);
      m.write(0, b, 0, b.length);
      m.setByte(b.length, (byte) 0);
      strings.add(m);
      return com.sun.jna.Pointer.nativeValue(m);
    }

    @Override
    public void close() {
      strings.forEach(com.sun.jna.Memory::close);
    }
  }

  private static long sys(String call, String what, long nr, long a1, long a2, long a3, long a4, long a5)
      throws ErrnoException {
    long r = LibC.syscall(nr, a1, a2, a3, a4, a5);
    if (r < 0) {
      throw new ErrnoException(call, Native.getLastError(), what);
    }
    return r;
  }

  /** An fscache-mode EROFS mount: {@code mount -t erofs none -o fsid=F[,domain_id=D]}. */
  public static void mountErofsFscache(String fsid, String domainId, Path target) throws ErrnoException {
    String data = "fsid=" + fsid + (domainId == null ? "" : ",domain_id=" + domainId);
    mount("none", target.toAbsolutePath().toString(), "erofs", MS_RDONLY, data);
  }

  public static void mount(String source, String target, String fstype, long flags, String data)
      throws ErrnoException {
    if (LibC.mount(source, target, fstype, new NativeLong(flags), data.isEmpty() ? null : data) < 0) {
      throw new ErrnoException("mount", Native.getLastError(),
          fstype + " " + source + " on " + target + (data.isEmpty() ? "" : " -o " + data));
    }
  }

  /** umount2(2). {@code flags}: 0, {@link #MNT_DETACH} (lazy) or {@link #MNT_FORCE}. */
  public static void umount(Path target, int flags) throws ErrnoException {
    if (LibC.umount2(target.toAbsolutePath().toString(), flags) < 0) {
      throw new ErrnoException("umount2", Native.getLastError(), target.toString());
    }
  }

  /**
   * Unmounts {@code target} if it is mounted; when it is busy (files open in it), detaches it
   * instead (MNT_DETACH: gone from the tree now, cleaned up when the last user lets go).
   *
   * @return false if nothing was mounted there
   */
  public static boolean unmountOrDetach(Path target) throws IOException {
    if (!isMountPoint(target)) {
      return false;
    }
    try {
      umount(target, 0);
    } catch (ErrnoException e) {
      umount(target, MNT_DETACH);
    }
    return true;
  }

  /** True if {@code target} is a mount point in this mount namespace. */
  public static boolean isMountPoint(Path target) throws IOException {
    return mountInfo(target) != null;
  }

  /**
   * The /proc/self/mountinfo entry whose mount point is {@code target} (the last one, when
   * mounts are stacked), or null.
   */
  public static MountInfo mountInfo(Path target) throws IOException {
    String want = target.toAbsolutePath().normalize().toString();
    MountInfo found = null;
    for (MountInfo mi : mountInfos()) {
      if (mi.mountPoint().equals(want)) {
        found = mi;
      }
    }
    return found;
  }

  /** All entries of /proc/self/mountinfo, in order. */
  public static List<MountInfo> mountInfos() throws IOException {
    List<MountInfo> out = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
      // id parent maj:min root mountpoint options [optional...] - fstype source superopts
      String[] f = line.split(" ");
      int dash = -1;
      for (int i = 6; i < f.length; i++) {
        if (f[i].equals("-")) {
          dash = i;
          break;
        }
      }
      if (f.length < 7 || dash < 0 || dash + 3 > f.length) {
        continue;
      }
      out.add(new MountInfo(unescape(f[4]), f[dash + 1], unescape(f[dash + 2]), f[2],
          dash + 3 < f.length ? f[dash + 3] : ""));
    }
    return out;
  }

  /** One mount: where, what type, what source, which device number, the superblock options. */
  public record MountInfo(String mountPoint, String fsType, String source, String majorMinor,
      String superOptions) {}

  private static String unescape(String s) {
    if (s.indexOf('\\') < 0) {
      return s;
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 3 < s.length()) {
        b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }
}
