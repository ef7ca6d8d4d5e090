package io.lazypull.daemon;

import io.lazypull.daemon.device.AnonFd;
import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.device.Request;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;

/**
 * An in-memory device for testing the request loop: requests are queued by the test, replies
 * recorded; each object's cache file is a real sparse file, so SEEK_DATA/SEEK_HOLE behave as
 * on the kernel's backing files.
 */
final class FakeDevice implements Device {
  final LinkedBlockingDeque<Request> queue = new LinkedBlockingDeque<>();
  /** msgId -> copen size (or -errno). */
  final Map<Integer, Long> copens = new ConcurrentHashMap<>();
  /** msgIds of completed READs, in order, duplicates kept. */
  final List<Integer> completions = new CopyOnWriteArrayList<>();
  final Map<Integer, FakeAnonFd> fds = new ConcurrentHashMap<>();
  private final Path dir;
  volatile boolean closed;

  FakeDevice(Path dir) {
    this.dir = dir;
  }

  FakeAnonFd open(int msgId, int objectId, String domain, String digest) throws IOException {
    FakeAnonFd fd = new FakeAnonFd(dir.resolve("obj-" + objectId + "-" + msgId));
    fds.put(objectId, fd);
    queue.add(new Request.Open(msgId, objectId, "erofs," + domain, digest, fd));
    return fd;
  }

  void read(int msgId, int objectId, long offset, long length) {
    queue.add(new Request.Read(msgId, objectId, offset, length));
  }

  @Override
  public boolean awaitReadable(long timeoutMillis) throws IOException {
    try {
      Request r = queue.poll(timeoutMillis, TimeUnit.MILLISECONDS);
      if (r == null) {
        return false;
      }
      queue.addFirst(r); // peeked; hand it out in read()
      return true;
    } catch (InterruptedException e) {
      throw new IOException(e);
    }
  }

  @Override
  public Request read() {
    return queue.poll();
  }

  /** When set, runs inside every copen (as a READ sent the moment the copen is written would). */
  volatile Runnable onCopen;

  @Override
  public void copen(int msgId, long size) {
    copens.put(msgId, size);
    Runnable r = onCopen;
    if (r != null) {
      r.run();
    }
  }

  @Override
  public void copenError(int msgId, int errno) {
    copens.put(msgId, (long) -errno);
  }

  @Override
  public void restore() {}

  @Override
  public int fd() {
    return -1;
  }

  @Override
  public String describe() {
    return "fake";
  }

  @Override
  public void close() {
    closed = true;
  }

  long awaitCopen(int msgId) throws InterruptedException {
    for (int i = 0; i < 1000 && !copens.containsKey(msgId); i++) {
      Thread.sleep(10);
    }
    Long v = copens.get(msgId);
    if (v == null) {
      throw new AssertionError("no copen for msg " + msgId);
    }
    return v;
  }

  void awaitCompletions(int count) throws InterruptedException {
    for (int i = 0; i < 2000 && completions.size() < count; i++) {
      Thread.sleep(5);
    }
    if (completions.size() < count) {
      throw new AssertionError("only " + completions.size() + " of " + count + " READs completed: " + completions);
    }
  }

  final class FakeAnonFd implements AnonFd {
    final int fd;
    final Path file;
    volatile boolean closed;

    FakeAnonFd(Path file) throws IOException {
      this.file = file;
      this.fd = Posix.open(file.toString(), Posix.O_RDWR | Posix.O_CREAT, 0600);
    }

    @Override
    public void write(long offset, ByteBuffer data) throws IOException {
      if (closed) {
        throw new IOException("write on a closed anon fd");
      }
      if (offset % 4096 != 0 || data.remaining() % 4096 != 0) {
        throw new IOException("unaligned write " + offset + "+" + data.remaining());
      }
      Posix.pwriteFully(fd, data, offset);
    }

    @Override
    public void completeRead(int msgId) throws IOException {
      if (closed) {
        throw new IOException("complete on a closed anon fd");
      }
      completions.add(msgId);
    }

    @Override
    public long seekData(long offset) throws IOException {
      return Posix.seekData(fd, offset);
    }

    @Override
    public long seekHole(long offset) throws IOException {
      return Posix.seekHole(fd, offset);
    }

    @Override
    public void close() {
      if (!closed) {
        closed = true;
        Posix.closeQuietly(fd);
      }
    }

    byte[] bytes(long offset, int len) throws IOException {
      byte[] b = new byte[len];
      int f = Posix.open(file.toString(), Posix.O_RDONLY, 0);
      try {
        Posix.pread(f, ByteBuffer.wrap(b), offset);
      } finally {
        Posix.close(f);
      }
      return b;
    }

    boolean cached(long start, long end) throws IOException {
      int f = Posix.open(file.toString(), Posix.O_RDONLY, 0);
      try {
        long hole = Posix.seekHole(f, start);
        return hole >= end;
      } finally {
        Posix.close(f);
      }
    }
  }
}
