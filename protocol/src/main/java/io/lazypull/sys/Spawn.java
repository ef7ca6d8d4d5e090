package io.lazypull.sys;

import com.sun.jna.Memory;
import com.sun.jna.StringArray;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Starts a process with chosen fds of ours at chosen fd numbers in the child, which
 * {@link ProcessBuilder} cannot do. This is how systemd passes its fd store to a restarted
 * service (fds 3.. with LISTEN_FDS), so tests use it to play systemd.
 */
public final class Spawn {
  private Spawn() {}

  /**
   * posix_spawnp(3): runs {@code argv} with environment {@code env}; {@code fds[i]} becomes fd
   * {@code 3 + i} in the child (without close-on-exec). Standard streams are inherited.
   *
   * @return the child's pid
   */
  public static int spawn(List<String> argv, Map<String, String> env, int... fds) throws ErrnoException {
    List<String> envList = new ArrayList<>();
    env.forEach((k, v) -> envList.add(k + "=" + v));
    try (Memory actions = new Memory(256); Memory pid = new Memory(4)) {
      actions.clear();
      check("posix_spawn_file_actions_init", LibC.posix_spawn_file_actions_init(actions));
      try {
        for (int i = 0; i < fds.length; i++) {
          check("posix_spawn_file_actions_adddup2", LibC.posix_spawn_file_actions_adddup2(actions, fds[i], 3 + i));
        }
        StringArray args = new StringArray(argv.toArray(new String[0]));
        StringArray envp = new StringArray(envList.toArray(new String[0]));
        check("posix_spawnp " + argv.get(0), LibC.posix_spawnp(pid, argv.get(0), actions, null, args, envp));
        return pid.getInt(0);
      } finally {
        LibC.posix_spawn_file_actions_destroy(actions);
      }
    }
  }

  private static void check(String call, int rc) throws ErrnoException {
    if (rc != 0) { // posix_spawn functions return the error number instead of setting errno
      throw new ErrnoException(call, rc);
    }
  }
}
