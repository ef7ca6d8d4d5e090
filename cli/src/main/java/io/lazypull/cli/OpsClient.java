package io.lazypull.cli;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/** One HTTP/1.0 request to an {@link OpsServer}'s unix socket, bounded in time. */
final class OpsClient {
  private static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor(r -> {
    Thread t = new Thread(r, "ops-client-timer");
    t.setDaemon(true);
    return t;
  });

  private OpsClient() {}

  /** The body of {@code METHOD path}; an IOException for anything but 200 (with the body). */
  static String request(Path socket, String method, String path, long timeoutMillis) throws IOException {
    try (SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      var timeout = TIMER.schedule(() -> {
        try {
          c.close();
        } catch (IOException e) {
          // closing anyway
        }
      }, timeoutMillis, TimeUnit.MILLISECONDS);
      try {
        c.connect(UnixDomainSocketAddress.of(socket));
        c.write(ByteBuffer.wrap((method + " " + path + " HTTP/1.0\r\nHost: lazypull\r\n\r\n")
            .getBytes(StandardCharsets.ISO_8859_1)));
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
        ByteBuffer buf = ByteBuffer.allocate(65536);
        while (c.read(buf.clear()) >= 0) {
          all.write(buf.array(), 0, buf.position());
        }
        String resp = all.toString(StandardCharsets.UTF_8);
        int split = resp.indexOf("\r\n\r\n");
        if (split < 0 || !resp.startsWith("HTTP/1.")) {
          throw new IOException(socket + ": not an HTTP answer");
        }
        String status = resp.substring(0, resp.indexOf("\r\n"));
        String body = resp.substring(split + 4);
        if (!status.contains(" 200 ")) {
          throw new IOException(socket + ": " + status.substring(status.indexOf(' ') + 1) + ": " + body.strip());
        }
        return body;
      } catch (java.nio.channels.AsynchronousCloseException e) {
        throw new IOException(socket + ": no answer within " + timeoutMillis + " ms");
      } finally {
        timeout.cancel(false);
      }
    }
  }

  /** True if something answers HTTP on {@code socket}. */
  static boolean answers(Path socket) {
    try {
      request(socket, "GET", "/status", 2000);
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
