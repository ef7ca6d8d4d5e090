package io.lazypull.cli.shim;

import io.lazypull.daemon.device.AnonFd;
import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.device.DeviceDeadException;
import io.lazypull.daemon.device.Request;
import io.lazypull.sys.Errno;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A tiny daemon on any {@link Device}: blobs by name from byte arrays, every READ filled from
 * them (or, with {@link #failReads}, completed without data). It is only what the shim tests
 * need; the real request loop is io.lazypull.daemon.Daemon, which could replace it here.
 */
final class TestBlobDaemon implements AutoCloseable {
  private final Device device;
  private final Map<String, byte[]> blobs;
  private final Map<Integer, Obj> objects = new ConcurrentHashMap<>();
  private final ExecutorService pool = Executors.newFixedThreadPool(2);
  private final Thread loop;
  private final boolean restore;
  private volatile boolean stop;
  volatile boolean failReads;
  /** Each READ sleeps this long first (so that a crash finds READs in flight). */
  volatile long readDelayMillis;
  final AtomicInteger opens = new AtomicInteger();
  /** Every READ request served: {blob name, offset, length}. */
  final List<Object[]> reads = java.util.Collections.synchronizedList(new ArrayList<>());
  volatile Throwable error;

  private record Obj(String name, byte[] data, AnonFd fd) {}

  TestBlobDaemon(Device device, Map<String, byte[]> blobs) {
    this(device, blobs, false);
  }

  /** With {@code restore}: a daemon that took over a held device writes restore, then reads. */
  TestBlobDaemon(Device device, Map<String, byte[]> blobs, boolean restore) {
    this.device = device;
    this.blobs = blobs;
    this.restore = restore;
    this.loop = new Thread(this::run, "test-daemon");
    loop.setDaemon(true);
    loop.start();
  }

  private void run() {
    try {
      if (restore) {
        device.restore();
      }
      while (!stop) {
        if (!device.awaitReadable(100)) {
          continue;
        }
        Request r;
        while (!stop && (r = device.read()) != null) {
          if (r instanceof Request.Open o) {
            onOpen(o);
          } else if (r instanceof Request.Read rd) {
            pool.execute(() -> onRead(rd));
          } else if (r instanceof Request.Close c) {
            Obj obj = objects.remove(c.objectId());
            if (obj != null) {
              obj.fd().close();
            }
          }
        }
      }
    } catch (DeviceDeadException e) {
      // the shim went away, or we were closed
    } catch (IOException | RuntimeException e) {
      if (!stop) {
        error = e;
      }
    }
  }

  private void onOpen(Request.Open o) throws IOException {
    opens.incrementAndGet();
    byte[] data = blobs.get(o.cookieKey());
    if (data == null) {
      device.copenError(o.msgId(), Errno.ENOENT);
      o.anonFd().close();
      return;
    }
    objects.put(o.objectId(), new Obj(o.cookieKey(), data, o.anonFd()));
    device.copen(o.msgId(), data.length);
  }

  private void onRead(Request.Read r) {
    Obj obj = objects.get(r.objectId());
    if (obj == null) {
      error = new IllegalStateException("READ for unknown object " + r.objectId());
      return;
    }
    try {
      if (readDelayMillis > 0) {
        Thread.sleep(readDelayMillis);
      }
      if (stop) {
        return; // crashed meanwhile: never answered
      }
      reads.add(new Object[] {obj.name(), r.offset(), r.length()});
      if (!failReads) {
        ByteBuffer buf = ByteBuffer.allocateDirect((int) r.length());
        int n = (int) Math.max(0, Math.min(r.length(), obj.data().length - r.offset()));
        buf.put(obj.data(), (int) r.offset(), n).clear();
        obj.fd().write(r.offset(), buf);
      }
      obj.fd().completeRead(r.msgId());
    } catch (IOException e) {
      if (!stop) {
        error = e;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Writes the whole of blob {@code name} into its open object's cache file, as a prefetch does. */
  void fillWhole(String name) throws IOException {
    for (Obj obj : objects.values()) {
      if (obj.name().equals(name)) {
        int padded = (obj.data().length + 4095) / 4096 * 4096;
        ByteBuffer buf = ByteBuffer.allocateDirect(padded);
        buf.put(obj.data()).clear();
        obj.fd().write(0, buf);
        return;
      }
    }
    throw new IllegalStateException("blob " + name + " is not open");
  }

  /**
   * kill -9: every fd closes at once and nothing in flight is answered (READs being served are
   * abandoned). A holder's copy of the device socket, if any, keeps the device alive.
   */
  void crash() {
    stop = true;
    pool.shutdownNow();
    for (Obj o : objects.values()) {
      o.fd().close();
    }
    objects.clear();
    device.close();
    try {
      loop.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** The device's fd, for a holder to dup. */
  int deviceFd() {
    return device.fd();
  }

  /** READ requests served for one blob. */
  long readsOf(String name) {
    synchronized (reads) {
      return reads.stream().filter(x -> x[0].equals(name)).count();
    }
  }

  /** Stops serving and lets go of everything, as a process exit would (no replies). */
  @Override
  public void close() {
    stop = true;
    try {
      loop.join(5000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    pool.shutdown();
    try {
      pool.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (Obj o : objects.values()) {
      o.fd().close();
    }
    objects.clear();
    device.close();
  }
}
