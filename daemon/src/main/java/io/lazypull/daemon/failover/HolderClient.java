package io.lazypull.daemon.failover;

import io.lazypull.protocol.HolderWire;
import io.lazypull.sys.UnixSocket;
import java.io.IOException;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A daemon's connection to {@code lazypull holder}. After {@link #take} succeeds the connection
 * is this daemon's lease: it must stay open for the daemon's whole life (its closing, at exit
 * or crash, is how the holder learns that the next daemon may have the device).
 */
public final class HolderClient implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(HolderClient.class);
  private static final int REPLY_TIMEOUT_SECONDS = 30;

  private final Path path;
  private final UnixSocket socket;
  private final LinkedBlockingQueue<HolderWire.Line> replies = new LinkedBlockingQueue<>();
  private final Object handoverLock = new Object();
  // guarded by handoverLock: a HANDOVER that came before its handler waits for it
  private Runnable onHandover;
  private boolean handoverPending;
  private Thread reader;

  private HolderClient(Path path, UnixSocket socket) {
    this.path = path;
    this.socket = socket;
  }

  public static HolderClient connect(Path path) throws IOException {
    try {
      return new HolderClient(path, UnixSocket.connect(path, UnixSocket.Type.SEQPACKET));
    } catch (IOException e) {
      throw new IOException("cannot reach the holder at " + path + " (is 'lazypull holder --socket "
          + path + "' running?): " + e.getMessage(), e);
    }
  }

  /** Another daemon holds the lease. */
  public static final class BusyException extends IOException {
    private static final long serialVersionUID = 1L;

    BusyException(String message) {
      super(message);
    }
  }

  /**
   * Asks for the device. Waits up to {@code waitMillis} (-1: forever, the standby's way) while
   * another daemon is active. Returns the held device fd (adopt it and write {@code restore}),
   * or empty: no device is held yet (open and bind one, then {@link #put} it).
   *
   * @throws BusyException if another daemon stays active past the wait
   */
  public synchronized OptionalInt take(long waitMillis) throws IOException {
    startReader();
    HolderWire.send(socket, "TAKE " + waitMillis);
    HolderWire.Line reply = awaitReply(waitMillis < 0 ? Long.MAX_VALUE : waitMillis + 30_000);
    switch (reply.word()) {
      case "FD":
        if (reply.fds().length != 1) {
          reply.closeFds();
          throw new IOException("holder " + path + " sent FD without exactly one fd");
        }
        return OptionalInt.of(reply.fds()[0]);
      case "NONE":
        return OptionalInt.empty();
      case "BUSY":
        throw new BusyException("another daemon (pid " + reply.arg() + ") is active on holder " + path
            + "; stop it, or start this one with --standby");
      default:
        throw new IOException("holder " + path + ": " + reply.text());
    }
  }

  /** Stores a freshly bound device with the holder (only the lease holder may). */
  public synchronized void put(int deviceFd) throws IOException {
    HolderWire.send(socket, "PUT", deviceFd);
    expectOk("PUT");
  }

  /** Tells the holder this daemon closed its objects: the next one may take over at once. */
  public synchronized void release() throws IOException {
    HolderWire.send(socket, "RELEASE");
    expectOk("RELEASE");
  }

  /** Asks the active daemon to hand over to a waiting standby; returns the active pid. */
  public synchronized int upgrade() throws IOException {
    startReader();
    HolderWire.send(socket, "UPGRADE");
    HolderWire.Line reply = awaitReply(REPLY_TIMEOUT_SECONDS * 1000L);
    if (!reply.word().equals("OK")) {
      throw new IOException("upgrade refused by holder " + path + ": " + reply.arg());
    }
    return Integer.parseInt(reply.arg());
  }

  public synchronized String status() throws IOException {
    startReader();
    HolderWire.send(socket, "STATUS");
    return awaitReply(REPLY_TIMEOUT_SECONDS * 1000L).text();
  }

  /**
   * What to do when the holder asks this (active) daemon to hand over (an upgrade). A request
   * that arrived before the handler was set (an upgrade right after the take-over) runs it now.
   */
  public void onHandover(Runnable handler) {
    boolean pending;
    synchronized (handoverLock) {
      onHandover = handler;
      pending = handoverPending;
      handoverPending = false;
    }
    if (pending) {
      handler.run();
    }
  }

  private void handoverRequested() {
    Runnable handler;
    synchronized (handoverLock) {
      handler = onHandover;
      handoverPending = handler == null;
    }
    if (handler != null) {
      handler.run();
    } else {
      log.info("hand-over requested before the daemon serves; it runs once the daemon is ready");
    }
  }

  private void expectOk(String what) throws IOException {
    HolderWire.Line reply = awaitReply(REPLY_TIMEOUT_SECONDS * 1000L);
    if (!reply.word().equals("OK")) {
      throw new IOException(what + " refused by holder " + path + ": " + reply.arg());
    }
  }

  private HolderWire.Line awaitReply(long millis) throws IOException {
    try {
      HolderWire.Line l = replies.poll(millis, TimeUnit.MILLISECONDS);
      if (l == null) {
        throw new IOException("holder " + path + " did not answer within " + millis + " ms");
      }
      if (l.text().equals("EOF")) {
        throw new IOException("holder " + path + " closed the connection");
      }
      return l;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted waiting for holder " + path, e);
    }
  }

  /** One thread reads everything the holder sends: replies for callers, HANDOVER for the handler. */
  private void startReader() {
    if (reader != null) {
      return;
    }
    reader = new Thread(() -> {
      try {
        HolderWire.Line l;
        while ((l = HolderWire.receive(socket)) != null) {
          if (l.text().equals("HANDOVER")) {
            handoverRequested();
          } else {
            replies.add(l);
          }
        }
      } catch (IOException e) {
        log.debug("holder connection: {}", e.getMessage());
      }
      replies.add(new HolderWire.Line("EOF", new int[0]));
    }, "holder-lease");
    reader.setDaemon(true);
    reader.start();
  }

  /** Ends the lease (the holder then hands the device to the next daemon). */
  @Override
  public void close() {
    socket.close();
  }
}
