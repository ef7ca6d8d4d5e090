package io.lazypull.cli;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Who owns a stack's directory, with locks the kernel drops when their process dies (even by
 * SIGKILL), so nothing stale is ever left to clean up:
 *
 * <pre>
 *   DIR/run/up.lock        'up' holds it (exclusive) while it runs: a second 'up' on DIR is
 *                          refused before it touches anything of the first
 *   DIR/run/children.lock  each process the stack starts holds it (shared) for its life
 *                          ({@link Main#STACK_LOCK}); a new 'up' takes it exclusively once, so
 *                          it starts only after the processes of a killed 'up' (they get
 *                          SIGTERM when it dies) have exited
 * </pre>
 *
 * up.lock is a {@link PidLock}; both are fcntl locks (FileChannel's): one per process and file,
 * never shared with the child processes, released when the channel or the process goes.
 */
final class StackLock implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(StackLock.class);
  /** How long a new 'up' waits for the processes of a killed one to exit. */
  private static final int CHILDREN_WAIT_SECONDS = 60;
  /** Kept open for the life of a child process: its shared lock on children.lock. */
  private static FileChannel childLock;

  private final PidLock upLock;
  final Path childrenLock;

  private StackLock(PidLock upLock, Path childrenLock) {
    this.upLock = upLock;
    this.childrenLock = childrenLock;
  }

  /**
   * Takes DIR/run/up.lock, then waits (bounded) until no process of an earlier stack on DIR
   * runs.
   *
   * @throws IOException naming the running 'up' (its pid), or the processes that do not exit
   */
  static StackLock acquire(Path run) throws IOException, InterruptedException {
    PidLock up = PidLock.take(run.resolve("up.lock"), pid -> "another 'lazypull up' (pid " + pid
        + ") is running on " + run.getParent() + ": stop it first, or give this one another --cache-dir");
    try {
      Path children = run.resolve("children.lock");
      awaitChildrenGone(children);
      return new StackLock(up, children);
    } catch (IOException | InterruptedException | RuntimeException e) {
      up.close();
      throw e;
    }
  }

  private static void awaitChildrenGone(Path children) throws IOException, InterruptedException {
    try (FileChannel ch = FileChannel.open(children, StandardOpenOption.CREATE, StandardOpenOption.READ,
        StandardOpenOption.WRITE)) {
      for (int i = 0; i < CHILDREN_WAIT_SECONDS * 10; i++) {
        FileLock lock = ch.tryLock();
        if (lock != null) {
          lock.release();
          return;
        }
        if (i == 0) {
          log.info("waiting for the processes of an earlier 'up' on {} to exit", children.getParent().getParent());
        }
        Thread.sleep(100);
      }
    }
    throw new IOException("processes started by an earlier 'lazypull up' on " + children.getParent().getParent()
        + " still run after " + CHILDREN_WAIT_SECONDS + " s (they keep " + children + " open: 'fuser -v "
        + children + "' lists them); stop them first");
  }

  /**
   * In a process the stack started: holds a shared lock on {@code children} until it exits.
   * A failure only costs the next 'up' its wait, so it is logged, not fatal; the wait is
   * bounded too (an 'up' holds the lock exclusively only for a moment).
   */
  static void holdForLife(Path children) {
    try {
      FileChannel ch = FileChannel.open(children, StandardOpenOption.READ);
      for (int i = 0; i < 100; i++) {
        if (ch.tryLock(0, Long.MAX_VALUE, true) != null) {
          childLock = ch;
          return;
        }
        Thread.sleep(100);
      }
      ch.close();
      log.warn("could not lock {} (shared) within 10 s", children);
    } catch (IOException e) {
      log.warn("could not lock {}: {}", children, e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    try {
      upLock.close();
    } catch (IOException e) {
      log.debug("closing the up lock: {}", e.getMessage());
    }
  }
}
