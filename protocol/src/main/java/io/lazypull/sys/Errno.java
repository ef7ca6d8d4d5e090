package io.lazypull.sys;

/** Linux errno values used by lazypull (x86_64 / arm64 generic numbering). */
public final class Errno {
  public static final int EPERM = 1;
  public static final int ENOENT = 2;
  public static final int EINTR = 4;
  public static final int EIO = 5;
  public static final int ENXIO = 6;
  public static final int EBADF = 9;
  public static final int EAGAIN = 11;
  public static final int ENOMEM = 12;
  public static final int EACCES = 13;
  public static final int EFAULT = 14;
  public static final int EBUSY = 16;
  public static final int EEXIST = 17;
  public static final int ENODEV = 19;
  public static final int ENOTDIR = 20;
  public static final int EISDIR = 21;
  public static final int EINVAL = 22;
  public static final int EMFILE = 24;
  public static final int ENOSPC = 28;
  public static final int EROFS = 30;
  public static final int EPIPE = 32;
  public static final int ERANGE = 34;
  public static final int ENAMETOOLONG = 36;
  public static final int ENOSYS = 38;
  public static final int ENODATA = 61;
  public static final int EBADMSG = 74;
  public static final int EBADFD = 77;
  public static final int EOPNOTSUPP = 95;
  public static final int ENOBUFS = 105;
  public static final int ENOTCONN = 107;
  public static final int ETIMEDOUT = 110;
  public static final int ECONNREFUSED = 111;
  public static final int EALREADY = 114;
  public static final int ECONNRESET = 104;
  public static final int EMSGSIZE = 90;
  /** EROFS's name for corrupted metadata (EUCLEAN). */
  public static final int EFSCORRUPTED = 117;

  private Errno() {}

  /** "ENOENT (No such file or directory)", from the C library's strerror. */
  public static String describe(int errno) {
    String name = name(errno);
    String text;
    try {
      text = LibC.strerror(errno);
    } catch (Throwable t) { // the native library may be unavailable in a unit test
      text = null;
    }
    return (name == null ? "errno " + errno : name) + (text == null ? "" : " (" + text + ")");
  }

  /** The symbolic name of an errno, or null if lazypull does not know it. */
  public static String name(int errno) {
    for (var f : Errno.class.getFields()) {
      try {
        if (f.getType() == int.class && f.getInt(null) == errno && !f.getName().equals("EFSCORRUPTED")) {
          return f.getName();
        }
      } catch (IllegalAccessException e) {
        throw new AssertionError(e);
      }
    }
    return null;
  }
}
