package io.lazypull.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Function;

/**
 * An exclusive lock on a file that says who holds it: the holder's pid is written into the
 * file, so a process that is refused can name it. Held until {@link #close()} or the holder's
 * death (even by SIGKILL: the kernel drops it), so nothing stale is left to clean up.
 *
 * <p>An fcntl lock (FileChannel's): one per process and file, and not inherited by child
 * processes, so the detached stack a snapshotter starts does not keep its lock.
 */
final class PidLock implements AutoCloseable {
  private final FileChannel channel;

  private PidLock(FileChannel channel) {
    this.channel = channel;
  }

  /**
   * Takes the lock on {@code file} (created if missing).
   *
   * @param refused the message when another process holds it, given that process's pid ("?"
   *     while it is still writing it)
   * @throws IOException with that message, or when the file cannot be opened
   */
  static PidLock take(Path file, Function<String, String> refused) throws IOException {
    FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
        StandardOpenOption.WRITE);
    try {
      FileLock lock = ch.tryLock();
      if (lock == null) {
        String pid = Files.readString(file, StandardCharsets.US_ASCII).strip();
        throw new IOException(refused.apply(pid.isEmpty() ? "?" : pid));
      }
      ch.truncate(0);
      ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
      return new PidLock(ch);
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
