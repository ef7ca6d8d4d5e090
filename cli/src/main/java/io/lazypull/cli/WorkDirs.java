package io.lazypull.cli;

import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Work directories of {@code demo} and the benchmarks, which run as root and build images,
 * mount and run programs in them. Another user must be able neither to make one first nor to
 * swap it (or a directory above it) for their own: with the fixed {@code /var/tmp/lazypull-demo}
 * wiped by {@code rm -rf} and then made again with mkdir -p, whoever made it again in between
 * got root to write the image, mount and run {@code java} in their directory.
 */
final class WorkDirs {
  private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");
  private static final int S_IFMT = 0170000;
  private static final int S_IFDIR = 0040000;
  private static final int S_IFLNK = 0120000;
  private static final int S_ISVTX = 01000;
  private static final int GROUP_OTHER_WRITE = 0022;
  private static final int MAX_SYMLINKS = 40; // as the kernel's path walk

  private WorkDirs() {}

  /**
   * {@code dir} wiped and made anew, mode 0700, by a mkdir that fails if it exists; returned as
   * its real path. Refused (an IOException with a one-line message) if it exists and is not a
   * directory of ours that no other user can write, or if another user could replace it: a
   * directory on the way to it that is not root's or ours, or that others can write and is not
   * sticky, or a symlink on the way that is not root's or ours.
   */
  static Path fresh(Path dir) throws IOException {
    Path abs = dir.toAbsolutePath().normalize();
    Path parent = abs.getParent();
    if (parent == null) {
      throw new IOException("refusing --work-dir /: it would be wiped");
    }
    int uid = Posix.getuid();
    makeWay(parent, abs, uid);
    Map<String, Object> a = lstat(abs);
    if (a != null) {
      int mode = (Integer) a.get("mode");
      if ((mode & S_IFMT) != S_IFDIR || (Integer) a.get("uid") != uid || (mode & GROUP_OTHER_WRITE) != 0) {
        throw refusal(abs, "it is " + describe(abs, a) + ", not a directory of ours that only we can write"
            + " (did another user make it?): remove it or choose another --work-dir");
      }
      remove(abs);
    }
    try {
      Files.createDirectory(abs, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
    } catch (FileAlreadyExistsException e) {
      throw refusal(abs, "it was made again while it was being wiped (by another user?)");
    }
    Files.setPosixFilePermissions(abs, OWNER_ONLY); // the umask may have taken more
    return abs.toRealPath();
  }

  /**
   * A new directory in /var/tmp with a random name, mode 0700 (no other user can have made it
   * first). /var/tmp, not /tmp: /tmp is often a tmpfs, where a big image takes memory and
   * fanotify has no pre-content events.
   */
  static Path temporary(String prefix) throws IOException {
    return Files.createTempDirectory(Path.of("/var/tmp"), prefix);
  }

  /** What a command does in its work directory. */
  interface Work {
    int run(Path work) throws Exception;
  }

  /**
   * Runs {@code work} in {@code dir} ({@link #fresh}, kept after) or, when null, in a {@link
   * #temporary} directory removed after.
   */
  static int use(Path dir, String prefix, Work work) throws Exception {
    Path w = dir != null ? fresh(dir) : temporary(prefix);
    try {
      return work.run(w);
    } finally {
      if (dir == null) {
        removeAfterUse(w);
      }
    }
  }

  /** {@link #remove}, after the work: a failure is one line on stderr, not an error of the command. */
  static void removeAfterUse(Path dir) {
    try {
      remove(dir);
    } catch (IOException e) {
      System.err.println("lazypull: left " + dir + ": " + e.getMessage());
    }
  }

  /** {@code rm -rf} of {@code dir}, staying on its filesystem (never into a mount left in it). */
  static void remove(Path dir) throws IOException {
    try {
      Process p = new ProcessBuilder("rm", "-rf", "--one-file-system", dir.toString()).redirectErrorStream(true)
          .start();
      String output = new String(p.getInputStream().readAllBytes()).strip();
      if (!p.waitFor(600, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("cannot remove " + dir + ": rm did not end within 600 s");
      }
      if (p.exitValue() != 0) {
        throw new IOException("cannot remove " + dir + ": " + output.lines().findFirst().orElse("rm failed"));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while removing " + dir, e);
    }
  }

  /**
   * Walks to {@code dir} component by component, following symlinks as the kernel would, and
   * refuses a step that another user controls; makes the directories that are missing (only
   * past steps already checked, never through another user's symlink). Root and we are
   * trusted; a sticky directory (as /tmp and /var/tmp) lets others add entries but not replace
   * ours or root's.
   */
  private static void makeWay(Path dir, Path work, int uid) throws IOException {
    Deque<Path> todo = new ArrayDeque<>();
    dir.forEach(todo::add);
    Path cur = dir.getRoot();
    checkDirectory(cur, lstat(cur), work, uid);
    int links = 0;
    while (!todo.isEmpty()) {
      String name = todo.removeFirst().toString();
      if (name.equals(".") || name.isEmpty()) {
        continue;
      }
      if (name.equals("..")) {
        cur = cur.getParent() != null ? cur.getParent() : cur;
        continue;
      }
      Path next = cur.resolve(name);
      Map<String, Object> a = lstat(next);
      if (a == null) {
        try {
          Files.createDirectory(next);
        } catch (FileAlreadyExistsException e) {
          // made meanwhile: checked below like any other
        }
        a = lstat(next);
        if (a == null) {
          throw new NoSuchFileException(next.toString());
        }
      }
      if (((Integer) a.get("mode") & S_IFMT) != S_IFLNK) {
        checkDirectory(next, a, work, uid);
        cur = next;
        continue;
      }
      if (!trusted((Integer) a.get("uid"), uid)) {
        throw refusal(work, next + " on the way to it is a symlink of " + owner(next, a)
            + ": another user could point it elsewhere; choose another --work-dir");
      }
      if (++links > MAX_SYMLINKS) {
        throw refusal(work, "too many levels of symlinks");
      }
      Path target = Files.readSymbolicLink(next);
      List<Path> names = new ArrayList<>();
      target.forEach(names::add);
      for (int i = names.size() - 1; i >= 0; i--) {
        todo.addFirst(names.get(i));
      }
      if (target.isAbsolute()) {
        cur = target.getRoot();
        checkDirectory(cur, lstat(cur), work, uid);
      }
    }
  }

  private static void checkDirectory(Path d, Map<String, Object> a, Path work, int uid) throws IOException {
    int mode = (Integer) a.get("mode");
    if ((mode & S_IFMT) != S_IFDIR) {
      throw refusal(work, d + " on the way to it is not a directory");
    }
    boolean othersCanReplace = (mode & GROUP_OTHER_WRITE) != 0 && (mode & S_ISVTX) == 0;
    if (!trusted((Integer) a.get("uid"), uid) || othersCanReplace) {
      throw refusal(work, d + " on the way to it is " + describe(d, a)
          + ": another user could replace what is in it; choose another --work-dir");
    }
  }

  private static boolean trusted(int owner, int uid) {
    return owner == 0 || owner == uid;
  }

  /** lstat(2): "mode" and "uid", or null if nothing is there. */
  private static Map<String, Object> lstat(Path p) throws IOException {
    try {
      return Files.readAttributes(p, "unix:mode,uid", LinkOption.NOFOLLOW_LINKS);
    } catch (NoSuchFileException e) {
      return null;
    }
  }

  /** "a directory of nobody (uid 65534), mode 0777", "a symlink of ...", for messages. */
  private static String describe(Path p, Map<String, Object> a) throws IOException {
    int mode = (Integer) a.get("mode");
    String type = switch (mode & S_IFMT) {
      case S_IFDIR -> "a directory";
      case S_IFLNK -> "a symlink";
      default -> "a file";
    };
    return String.format("%s of %s, mode %04o", type, owner(p, a), mode & 07777);
  }

  private static String owner(Path p, Map<String, Object> a) throws IOException {
    String name = Files.getOwner(p, LinkOption.NOFOLLOW_LINKS).getName();
    String uid = a.get("uid").toString();
    return name.equals(uid) ? "uid " + uid : name + " (uid " + uid + ")";
  }

  private static IOException refusal(Path work, String why) {
    return new IOException("refusing work directory " + work + ": " + why);
  }
}
