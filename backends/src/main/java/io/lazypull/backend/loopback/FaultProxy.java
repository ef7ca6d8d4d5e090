package io.lazypull.backend.loopback;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP proxy on 127.0.0.1 in front of a real server (S3Proxy, docker-registry) that spoils
 * connections on purpose. Faults are per connection: each new connection takes the next fault
 * from the script, and passes through once the script is empty (or always gets
 * {@link #always(Fault)}). Every faulty connection ends closed, so a client's retry comes on a
 * fresh connection. {@link #dropConnections()} closes the open ones, so that a client's pooled
 * connections do not outlive a change of fault. For tests and benchmarks.
 *
 * <pre>
 * PASS        relay both ways
 * STATUS_500  answer "500 Internal Server Error" to the first request, close
 * STATUS_503  answer "503 Service Unavailable" with Retry-After, close
 * RESET       read the request, close with SO_LINGER 0 (the client sees a reset)
 * REFUSE      close at once without reading (connection closed before any answer)
 * STALL       read the request, answer nothing until the client gives up
 * STALL_BODY  relay the response head and 1000 body bytes, then nothing
 * TRUNCATE    relay the response head and half the body, then close
 * CORRUPT     relay, flipping the first body byte of the first response
 * </pre>
 */
public final class FaultProxy implements AutoCloseable {
  /** What a connection gets. */
  public enum Fault { PASS, STATUS_500, STATUS_503, RESET, REFUSE, STALL, STALL_BODY, TRUNCATE, CORRUPT }

  private final int upstreamPort;
  private final ServerSocket server;
  private final ExecutorService threads = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "fault-proxy");
    t.setDaemon(true);
    return t;
  });
  private final Deque<Fault> script = new ArrayDeque<>();
  private volatile Fault always;
  private final Set<Socket> open = ConcurrentHashMap.newKeySet();
  private final AtomicInteger connections = new AtomicInteger();
  private final AtomicInteger faults = new AtomicInteger();

  /** A proxy on a free port of 127.0.0.1 in front of {@code 127.0.0.1:upstreamPort}. */
  public FaultProxy(int upstreamPort) throws IOException {
    this.upstreamPort = upstreamPort;
    this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    threads.execute(this::acceptLoop);
  }

  public int port() {
    return server.getLocalPort();
  }

  /** Connections accepted since the last {@link #script} or {@link #always}. */
  public int connections() {
    return connections.get();
  }

  /** Of those, the ones that got a fault. */
  public int faults() {
    return faults.get();
  }

  /** The next connections get these faults, in order; later ones pass. Resets the counters. */
  public synchronized FaultProxy script(Fault... faults) {
    script.clear();
    script.addAll(java.util.List.of(faults));
    always = null;
    connections.set(0);
    this.faults.set(0);
    return this;
  }

  /** Every connection gets this fault. Resets the counters. */
  public synchronized FaultProxy always(Fault fault) {
    script.clear();
    always = fault;
    connections.set(0);
    faults.set(0);
    return this;
  }

  /**
   * Closes every connection open now (a stalled one included): the clients see their pooled
   * connections reset and come back on new ones, which get the current fault.
   */
  public void dropConnections() {
    for (Socket s : open) {
      try {
        s.close();
      } catch (IOException ignored) {
        // closing anyway
      }
    }
  }

  private synchronized Fault next() {
    if (always != null) {
      return always;
    }
    Fault f = script.poll();
    return f == null ? Fault.PASS : f;
  }

  private void acceptLoop() {
    while (!server.isClosed()) {
      try {
        Socket client = server.accept();
        connections.incrementAndGet();
        Fault f = next();
        if (f != Fault.PASS) {
          faults.incrementAndGet();
        }
        threads.execute(() -> handle(client, f));
      } catch (IOException e) {
        return; // closed
      }
    }
  }

  private void handle(Socket client, Fault fault) {
    open.add(client);
    try (client) {
      client.setTcpNoDelay(true);
      InputStream cin = client.getInputStream();
      OutputStream cout = client.getOutputStream();
      switch (fault) {
        case REFUSE:
          return;
        case STATUS_500:
        case STATUS_503: {
          readHead(cin);
          int code = fault == Fault.STATUS_500 ? 500 : 503;
          String body = "<Error><Code>" + (code == 500 ? "InternalError" : "SlowDown")
              + "</Code><Message>injected</Message></Error>";
          cout.write(("HTTP/1.1 " + code + (code == 500 ? " Internal Server Error" : " Service Unavailable")
              + "\r\nContent-Type: application/xml\r\nContent-Length: " + body.length()
              + "\r\nRetry-After: 0\r\nConnection: close\r\n\r\n" + body)
              .getBytes(StandardCharsets.US_ASCII));
          cout.flush();
          return;
        }
        case RESET:
          readHead(cin);
          client.setSoLinger(true, 0);
          return;
        case STALL:
          readHead(cin);
          drainUntilClosed(cin, 60_000);
          return;
        default:
          relay(client, cin, cout, fault);
      }
    } catch (IOException e) {
      // The client went away; that is what several faults are about.
    } finally {
      open.remove(client);
    }
  }

  private void relay(Socket client, InputStream cin, OutputStream cout, Fault fault)
      throws IOException {
    try (Socket up = new Socket()) {
      up.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), upstreamPort), 5000);
      up.setTcpNoDelay(true);
      InputStream uin = up.getInputStream();
      OutputStream uout = up.getOutputStream();
      threads.execute(() -> pump(cin, uout, up));
      if (fault == Fault.PASS) {
        pump(uin, cout, client);
        return;
      }
      byte[] head = readHead(uin);
      if (head == null) {
        return;
      }
      long length = contentLength(head);
      cout.write(head);
      switch (fault) {
        case CORRUPT: {
          int b = uin.read();
          if (b >= 0) {
            cout.write(b ^ 0xff);
          }
          pump(uin, cout, client);
          return;
        }
        case TRUNCATE:
          copy(uin, cout, Math.max(1, length / 2));
          cout.flush();
          return;
        case STALL_BODY:
          copy(uin, cout, Math.min(1000, Math.max(1, length - 1)));
          cout.flush();
          drainUntilClosed(cin, 60_000);
          return;
        default:
          throw new AssertionError(fault);
      }
    }
  }

  private static void copy(InputStream in, OutputStream out, long n) throws IOException {
    byte[] buf = new byte[8192];
    while (n > 0) {
      int r = in.read(buf, 0, (int) Math.min(buf.length, n));
      if (r < 0) {
        return;
      }
      out.write(buf, 0, r);
      n -= r;
    }
  }

  /** Copies until EOF, then half-closes the destination socket. */
  private static void pump(InputStream in, OutputStream out, Socket dest) {
    byte[] buf = new byte[64 << 10];
    try {
      int r;
      while ((r = in.read(buf)) >= 0) {
        out.write(buf, 0, r);
        out.flush();
      }
      dest.shutdownOutput();
    } catch (IOException e) {
      try {
        dest.close();
      } catch (IOException ignored) {
        // closing anyway
      }
    }
  }

  private static void drainUntilClosed(InputStream in, long maxMillis) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(maxMillis);
    byte[] buf = new byte[4096];
    try {
      while (System.nanoTime() < deadline && in.read(buf) >= 0) {
        // wait for the client to hang up
      }
    } catch (IOException ignored) {
      // it did
    }
  }

  /** Reads an HTTP head up to and including the blank line; null at EOF. */
  private static byte[] readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    int state = 0;
    while (state < 4) {
      int b = in.read();
      if (b < 0) {
        return head.size() == 0 ? null : head.toByteArray();
      }
      head.write(b);
      state = (b == '\r' && (state == 0 || state == 2)) || (b == '\n' && (state == 1 || state == 3))
          ? state + 1 : (b == '\r' ? 1 : 0);
    }
    return head.toByteArray();
  }

  private static long contentLength(byte[] head) {
    for (String line : new String(head, StandardCharsets.ISO_8859_1).split("\r\n")) {
      if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
        return Long.parseLong(line.substring(15).trim());
      }
    }
    return -1;
  }

  @Override
  public void close() throws IOException {
    server.close();
    dropConnections();
    threads.shutdownNow();
  }
}
