package io.lazypull.cli;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The operations endpoint of a serving process: HTTP/1.0 on a unix socket (mode 0600) and
 * optionally on a TCP address. {@code GET /metrics}: Prometheus text; {@code GET /status}: JSON;
 * {@code POST /gc}: run the cache's eviction now (where there is a cache). One request per
 * connection; at most {@value #MAX_CLIENTS} at once, each closed after {@value #CLIENT_SECONDS} s.
 */
final class OpsServer implements Closeable {
  private static final Logger log = LoggerFactory.getLogger(OpsServer.class);
  static final int MAX_CLIENTS = 8;
  static final int CLIENT_SECONDS = 10;

  /** What the endpoints answer; a null body is 404. */
  interface Handler {
    String metrics() throws Exception;

    String status() throws Exception;

    /** The result of {@code POST /gc} as JSON, or null if this process has no cache. */
    default String gc() throws Exception {
      return null;
    }
  }

  private final Handler handler;
  private final List<ServerSocketChannel> servers = new ArrayList<>();
  private final Path socket;
  private final Semaphore clients = new Semaphore(MAX_CLIENTS);
  private final ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "ops-watchdog");
    t.setDaemon(true);
    return t;
  });
  private volatile boolean closed;

  private OpsServer(Path socket, Handler handler) {
    this.socket = socket;
    this.handler = handler;
  }

  /**
   * Listens on {@code socket} (a stale file nobody listens on is replaced) and, if not null, on
   * {@code address} ("HOST:PORT").
   */
  static OpsServer start(Path socket, String address, Handler handler) throws IOException {
    OpsServer s = new OpsServer(socket, handler);
    try {
      if (socket != null) {
        Files.createDirectories(socket.toAbsolutePath().getParent());
        if (Files.exists(socket)) {
          if (OpsClient.answers(socket)) {
            throw new IOException("ops socket " + socket + " is in use by another process");
          }
          Files.delete(socket);
        }
        ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        ch.bind(UnixDomainSocketAddress.of(socket));
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        s.listen(ch, "ops socket " + socket);
      }
      if (address != null) {
        int colon = address.lastIndexOf(':');
        if (colon <= 0) {
          throw new IllegalArgumentException("metrics address must be HOST:PORT, not '" + address + "'");
        }
        ServerSocketChannel ch = ServerSocketChannel.open();
        ch.bind(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))));
        s.listen(ch, "metrics on http://" + address + "/metrics");
      }
    } catch (IOException | RuntimeException e) {
      s.close();
      throw e;
    }
    return s;
  }

  private void listen(ServerSocketChannel ch, String what) {
    servers.add(ch);
    Thread t = new Thread(() -> accept(ch), "ops-accept");
    t.setDaemon(true);
    t.start();
    log.info("{}", what);
  }

  private void accept(ServerSocketChannel ch) {
    while (!closed) {
      SocketChannel c;
      try {
        c = ch.accept();
      } catch (IOException e) {
        if (!closed) {
          log.warn("ops endpoint: {}", e.getMessage());
        }
        return;
      }
      if (!clients.tryAcquire()) {
        closeQuietly(c);
        continue;
      }
      var timeout = watchdog.schedule(() -> closeQuietly(c), CLIENT_SECONDS, TimeUnit.SECONDS);
      Thread t = new Thread(() -> {
        try {
          serve(c);
        } finally {
          timeout.cancel(false);
          closeQuietly(c);
          clients.release();
        }
      }, "ops-client");
      t.setDaemon(true);
      t.start();
    }
  }

  private void serve(SocketChannel c) {
    try {
      String request = readHead(c);
      String[] line = request.split("\r?\n", 2)[0].split(" ");
      if (line.length < 2) {
        respond(c, 400, "text/plain", "bad request\n");
        return;
      }
      String method = line[0];
      String path = line[1];
      int q = path.indexOf('?');
      if (q >= 0) {
        path = path.substring(0, q);
      }
      String body;
      switch (method + " " + path) {
        case "GET /metrics":
          respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", handler.metrics());
          return;
        case "GET /status":
          respond(c, 200, "application/json", handler.status());
          return;
        case "POST /gc":
          body = handler.gc();
          if (body == null) {
            respond(c, 404, "text/plain", "this process has no cache\n");
          } else {
            respond(c, 200, "application/json", body);
          }
          return;
        default:
          respond(c, 404, "text/plain", "GET /metrics, GET /status, POST /gc\n");
      }
    } catch (Exception e) {
      log.debug("ops request: {}", e.toString());
      try {
        respond(c, 500, "text/plain", e + "\n");
      } catch (IOException ignored) {
        // the client went away
      }
    }
  }

  private static String readHead(SocketChannel c) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(8192);
    while (buf.hasRemaining()) {
      if (c.read(buf) < 0) {
        break;
      }
      String s = new String(buf.array(), 0, buf.position(), StandardCharsets.ISO_8859_1);
      if (s.contains("\r\n\r\n") || s.contains("\n\n")) {
        return s;
      }
    }
    return new String(buf.array(), 0, buf.position(), StandardCharsets.ISO_8859_1);
  }

  private static void respond(SocketChannel c, int code, String type, String body) throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    String reason = code == 200 ? "OK" : code == 404 ? "Not Found" : code == 400 ? "Bad Request" : "Error";
    String head = "HTTP/1.0 " + code + " " + reason + "\r\nContent-Type: " + type + "\r\nContent-Length: " + b.length
        + "\r\nConnection: close\r\n\r\n";
    ByteBuffer out = ByteBuffer.allocate(head.length() + b.length);
    out.put(head.getBytes(StandardCharsets.ISO_8859_1)).put(b).flip();
    while (out.hasRemaining()) {
      c.write(out);
    }
  }

  private static void closeQuietly(java.nio.channels.Channel c) {
    try {
      c.close();
    } catch (IOException e) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    closed = true;
    for (ServerSocketChannel ch : servers) {
      closeQuietly(ch);
    }
    watchdog.shutdownNow();
    if (socket != null && !servers.isEmpty()) {
      try {
        Files.deleteIfExists(socket);
      } catch (IOException e) {
        // gone anyway
      }
    }
  }
}
