package io.lazypull.sys;

import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;

/**
 * The C library, bound with JNA direct mapping. This is the only class that declares native
 * functions; every other class goes through {@link Posix}, {@link UnixSocket} and friends,
 * which turn -1 into an {@link ErrnoException}. Read errno with {@link Native#getLastError()}
 * right after a call (JNA saves it per thread).
 *
 * <p>Types follow x86_64/arm64 Linux: size_t/ssize_t/off_t/long are 64-bit Java longs.
 */
final class LibC {
  static {
    Native.register(LibC.class, "c");
  }

  private LibC() {}

  // files
  static native int open(String path, int flags, int mode);
  static native int close(int fd);
  static native long read(int fd, Pointer buf, long count);
  static native long write(int fd, Pointer buf, long count);
  static native long pread(int fd, Pointer buf, long count, long offset);
  static native long pwrite(int fd, Pointer buf, long count, long offset);
  static native long lseek(int fd, long offset, int whence);
  static native int ftruncate(int fd, long length);
  static native int fallocate(int fd, int mode, long offset, long len);
  static native int fsync(int fd);
  static native int fcntl(int fd, int cmd, long arg);
  static native int ioctl(int fd, NativeLong request, NativeLong arg);
  static native int dup(int fd);
  static native int poll(Pointer fds, long nfds, int timeout);
  static native int eventfd(int initval, int flags);
  static native int mknod(String path, int mode, long dev);
  static native int chmod(String path, int mode);
  static native int statx(int dirfd, Pointer path, int flags, int mask, Pointer buf);

  // extended attributes (Java's UserDefinedFileAttributeView only reaches user.*)
  static native long lgetxattr(String path, String name, Pointer value, long size);
  static native long llistxattr(String path, Pointer list, long size);
  static native int lsetxattr(String path, String name, Pointer value, long size, int flags);
  static native long fgetxattr(int fd, String name, Pointer value, long size);
  static native int fsetxattr(int fd, String name, Pointer value, long size, int flags);

  // mounts
  static native int mount(String source, String target, String fstype, NativeLong flags, String data);
  static native int umount2(String target, int flags);
  /** syscall(2) for the new mount API (fsopen 430, fsconfig 431, fsmount 432, move_mount 429). */
  static native long syscall(long number, long a1, long a2, long a3, long a4, long a5);

  // sockets
  static native int socket(int domain, int type, int protocol);
  static native int socketpair(int domain, int type, int protocol, int[] sv);
  static native int bind(int fd, Pointer addr, int len);
  static native int listen(int fd, int backlog);
  static native int accept4(int fd, Pointer addr, Pointer len, int flags);
  static native int connect(int fd, Pointer addr, int len);
  static native long sendmsg(int fd, Pointer msg, int flags);
  static native long recvmsg(int fd, Pointer msg, int flags);
  static native int getsockopt(int fd, int level, int name, Pointer val, Pointer len);
  static native int setsockopt(int fd, int level, int name, Pointer val, int len);
  static native int shutdown(int fd, int how);

  // processes and limits
  static native int getpid();
  static native int getuid();
  static native int getppid();
  static native int kill(int pid, int sig);
  static native int getrlimit(int resource, Pointer rlim);
  static native int setrlimit(int resource, Pointer rlim);
  static native int prctl(int option, long arg2, long arg3, long arg4, long arg5);

  // posix_spawn, for starting a child with an inherited fd at a chosen number (LISTEN_FDS)
  static native int posix_spawn_file_actions_init(Pointer actions);
  static native int posix_spawn_file_actions_adddup2(Pointer actions, int fd, int newfd);
  static native int posix_spawn_file_actions_destroy(Pointer actions);
  static native int posix_spawnp(Pointer pid, String file, Pointer actions, Pointer attr, Pointer argv, Pointer envp);

  // fanotify (pre-content events, Linux 6.14+)
  static native int fanotify_init(int flags, int eventFlags);
  static native int fanotify_mark(int fd, int flags, long mask, int dirfd, String path);

  static native String strerror(int errnum);
}
