package io.lazypull.backend;

import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An in-memory {@link Store} whose next attempts can be told to fail (with a kind, after
 * placing some bytes), to block until the watchdog aborts them, or to corrupt what they return.
 * It counts attempts and the most that ran at once.
 */
final class FakeStore implements Store {
  /** What the next attempt does instead of (or before) its job. */
  enum Action { FAIL_TRANSIENT, FAIL_PERMANENT, FAIL_NOT_FOUND, HALF_THEN_FAIL, HANG, IO_EXCEPTION }

  final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
  private final Deque<Action> script = new ArrayDeque<>();
  final AtomicInteger attempts = new AtomicInteger();
  final AtomicInteger running = new AtomicInteger();
  final AtomicInteger maxRunning = new AtomicInteger();
  volatile boolean corrupt;
  volatile boolean remote = true;
  volatile CountDownLatch gate; // when set, every attempt waits for it

  String add(byte[] bytes) {
    String hex = Digests.sha256Hex(ByteBuffer.wrap(bytes));
    blobs.put(hex, bytes);
    return hex;
  }

  synchronized FakeStore then(Action... actions) {
    script.addAll(java.util.List.of(actions));
    return this;
  }

  private synchronized Action next() {
    return script.poll();
  }

  @Override
  public String describe() {
    return "fake://store";
  }

  @Override
  public boolean remote() {
    return remote;
  }

  private byte[] begin(String hex, String op, Call call) throws IOException {
    attempts.incrementAndGet();
    int now = running.incrementAndGet();
    maxRunning.accumulateAndGet(now, Math::max);
    try {
      CountDownLatch g = gate;
      if (g != null && !g.await(30, TimeUnit.SECONDS)) {
        throw new IOException("gate never opened");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException();
    }
    Action a = next();
    if (a != null) {
      switch (a) {
        case FAIL_TRANSIENT:
          throw new BackendException(Kind.TRANSIENT, describe(), op, hex, 503, "injected", null);
        case FAIL_PERMANENT:
          throw new BackendException(Kind.PERMANENT, describe(), op, hex, 403, "injected", null);
        case FAIL_NOT_FOUND:
          throw new BackendException(Kind.NOT_FOUND, describe(), op, hex, 404, "injected", null);
        case IO_EXCEPTION:
          throw new java.net.SocketException("Connection reset");
        case HANG: {
          CountDownLatch aborted = new CountDownLatch(1);
          call.onAbort(aborted::countDown);
          try {
            aborted.await(30, TimeUnit.SECONDS);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          throw new IOException("stream closed");
        }
        case HALF_THEN_FAIL:
          return null; // handled by read/transfer
        default:
          throw new AssertionError(a);
      }
    }
    byte[] b = blobs.get(hex);
    if (b == null) {
      throw new BackendException(Kind.NOT_FOUND, describe(), op, hex, 404, "not found", null);
    }
    return b;
  }

  private void end() {
    running.decrementAndGet();
  }

  @Override
  public long size(String hex, Call call) throws IOException {
    try {
      byte[] b = begin(hex, "size", call);
      return (b == null ? blobs.get(hex) : b).length;
    } finally {
      end();
    }
  }

  @Override
  public int read(String hex, long offset, ByteBuffer dst, Call call) throws IOException {
    try {
      byte[] b = begin(hex, "read", call);
      boolean half = b == null;
      if (half) {
        b = blobs.get(hex);
      }
      if (offset >= b.length) {
        return -1;
      }
      int n = (int) Math.min(dst.remaining(), b.length - offset);
      if (half) {
        dst.put(b, (int) offset, n / 2);
        throw new BackendException(Kind.TRANSIENT, describe(), "read", hex, 0, "reset half way", null);
      }
      int start = dst.position();
      dst.put(b, (int) offset, n);
      if (corrupt && n > 0) {
        dst.put(start, (byte) (dst.get(start) ^ 1));
      }
      call.progress();
      return n;
    } finally {
      end();
    }
  }

  @Override
  public void transferTo(String hex, long offset, long end, WritableByteChannel out, Call call)
      throws IOException {
    try {
      byte[] b = begin(hex, "transfer", call);
      boolean half = b == null;
      if (half) {
        b = blobs.get(hex);
      }
      if (offset >= b.length) {
        return;
      }
      int len = (int) (Math.min(end, b.length) - offset);
      ByteBuffer src = ByteBuffer.wrap(b.clone(), (int) offset, half ? len / 2 : len);
      if (corrupt && src.hasRemaining()) {
        src.put(src.position(), (byte) (src.get(src.position()) ^ 1));
      }
      while (src.hasRemaining()) {
        out.write(src);
      }
      if (half) {
        throw new BackendException(Kind.TRANSIENT, describe(), "transfer", hex, 0, "reset half way", null);
      }
    } finally {
      end();
    }
  }

  @Override
  public void put(String hex, Path file, long size, Call call) throws IOException {
    Action a = next();
    attempts.incrementAndGet();
    if (a == Action.FAIL_TRANSIENT) {
      throw new BackendException(Kind.TRANSIENT, describe(), "put", hex, 503, "injected", null);
    }
    blobs.put(hex, Files.readAllBytes(file));
  }

  @Override
  public void close() {}
}
