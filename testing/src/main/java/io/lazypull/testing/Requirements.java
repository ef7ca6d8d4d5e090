package io.lazypull.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Checks for what privileged tests need. A test that cannot run here is skipped with the reason
 * printed on stderr (so it shows in CI logs, not only in the surefire report). On CI and on the
 * developers' machine these all hold; a skip there is a bug.
 */
public final class Requirements {
  private Requirements() {}

  /** Root: mount(2), mknod of devices, trusted.* xattrs. */
  public static void assumeRoot() {
    boolean root = "root".equals(System.getProperty("user.name"))
        || io.lazypull.sys.Posix.getuid() == 0;
    skipUnless(root, "needs root (mount(2), device nodes, trusted.* xattrs)");
  }

  /** Root and /dev/fuse plus libfuse2 (jnr-fuse). */
  public static void assumeFuse() {
    assumeRoot();
    skipUnless(Files.exists(Path.of("/dev/fuse")), "needs /dev/fuse");
    skipUnless(Files.exists(Path.of("/usr/lib/x86_64-linux-gnu/libfuse.so.2"))
        || Files.exists(Path.of("/lib/x86_64-linux-gnu/libfuse.so.2"))
        || Files.exists(Path.of("/usr/lib/aarch64-linux-gnu/libfuse.so.2")),
        "needs libfuse2 (apt-get install libfuse2)");
  }

  /** A command on the PATH, e.g. fsck.erofs or docker-registry. */
  public static void assumeCommand(String command) {
    boolean found = false;
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      if (Files.isExecutable(Path.of(dir, command))) {
        found = true;
        break;
      }
    }
    skipUnless(found, "needs the command '" + command + "' (see ci/deps)");
  }

  public static void skipUnless(boolean condition, String reason) {
    if (!condition) {
      StackWalker.StackFrame caller = StackWalker.getInstance().walk(s -> s
          .filter(f -> !f.getClassName().equals(Requirements.class.getName())).findFirst().orElseThrow());
      System.err.println("SKIPPED " + caller.getClassName() + "." + caller.getMethodName() + ": " + reason);
      assumeTrue(false, reason);
    }
  }
}
