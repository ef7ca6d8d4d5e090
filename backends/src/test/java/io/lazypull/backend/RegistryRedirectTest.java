package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A registry front that answers blob requests with redirects, as registries backed by object
 * storage do: to another host ("localhost" instead of "127.0.0.1", another port) the
 * Authorization header must not follow; to its own origin it must.
 *
 * <pre>
 * front    127.0.0.1:P1  /v2/r/blobs/sha256:HEX  -> 401 Basic, then 307 to one of:
 * storage  localhost:P2  /bucket/HEX?X-Sig=..    serves bytes (Range), records Authorization
 * front    127.0.0.1:P1  /internal/HEX           serves bytes (same origin)
 * </pre>
 */
class RegistryRedirectTest {
  static final String PASSWORD = "redirect-Password-DO-NOT-LEAK";
  static final String BASIC = "Basic " + Base64.getEncoder()
      .encodeToString(("u:" + PASSWORD).getBytes(StandardCharsets.UTF_8));
  static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d*)");

  @TempDir static Path dir;
  static HttpServer front;
  static HttpServer storage;
  static TestBlobs.Blob blob;
  static volatile boolean sameOrigin;
  static final List<String> storageAuth = new CopyOnWriteArrayList<>();
  static final List<String> frontAuth = new CopyOnWriteArrayList<>();

  @BeforeAll
  static void start() throws Exception {
    blob = TestBlobs.create(dir, "blob.bin", 500_000, 31);
    InetSocketAddress loopback = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
    storage = HttpServer.create(loopback, 16);
    storage.createContext("/bucket/", ex -> {
      storageAuth.add(String.valueOf(ex.getRequestHeaders().getFirst("Authorization")));
      serve(ex);
    });
    storage.start();
    front = HttpServer.create(loopback, 16);
    front.createContext("/v2/", ex -> {
      String auth = ex.getRequestHeaders().getFirst("Authorization");
      frontAuth.add(String.valueOf(auth));
      if (!BASIC.equals(auth)) {
        ex.getResponseHeaders().add("WWW-Authenticate", "Basic realm=\"front\"");
        ex.sendResponseHeaders(401, -1);
        ex.close();
        return;
      }
      String location = sameOrigin ? "/internal/" + blob.hex()
          : "http://localhost:" + storage.getAddress().getPort() + "/bucket/" + blob.hex()
              + "?X-Sig=abc";
      ex.getResponseHeaders().add("Location", location);
      ex.sendResponseHeaders(307, -1);
      ex.close();
    });
    front.createContext("/internal/", ex -> {
      frontAuth.add(String.valueOf(ex.getRequestHeaders().getFirst("Authorization")));
      serve(ex);
    });
    front.start();
  }

  @AfterAll
  static void stop() {
    front.stop(0);
    storage.stop(0);
  }

  @BeforeEach
  void clear() {
    storageAuth.clear();
    frontAuth.clear();
  }

  /** Serves the blob, honouring a single Range. */
  static void serve(HttpExchange ex) throws IOException {
    try (ex) {
      byte[] all = Files.readAllBytes(blob.path());
      String range = ex.getRequestHeaders().getFirst("Range");
      int from = 0;
      int to = all.length - 1;
      int status = 200;
      if (range != null) {
        Matcher m = RANGE.matcher(range);
        if (m.matches()) {
          from = Integer.parseInt(m.group(1));
          if (from >= all.length) {
            ex.sendResponseHeaders(416, -1);
            return;
          }
          if (!m.group(2).isEmpty()) {
            to = Math.min(to, Integer.parseInt(m.group(2)));
          }
          status = 206;
          ex.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + to + "/" + all.length);
        }
      }
      boolean head = ex.getRequestMethod().equals("HEAD");
      ex.sendResponseHeaders(status, head ? -1 : to - from + 1);
      if (head) {
        return;
      }
      try (OutputStream os = ex.getResponseBody()) {
        os.write(all, from, to - from + 1);
      }
    }
  }

  static BlobBackend open() throws IOException {
    return Backends.open("oci+http://127.0.0.1:" + front.getAddress().getPort() + "/r",
        BackendOptions.builder().credentials(new Credentials("u", PASSWORD))
            .environment(Map.of("HOME", "/nonexistent")).build());
  }

  @Test
  void redirectToAnotherHost_dropsAuthorization() throws Exception {
    sameOrigin = false;
    try (BlobBackend b = open()) {
      ByteBuffer dst = ByteBuffer.allocate(10_000);
      assertThat(b.read(blob.hex(), 123_456, dst)).isEqualTo(10_000);
      assertThat(dst.array()).isEqualTo(blob.bytes(123_456, 10_000));
      Path out = dir.resolve("whole.out");
      assertThat(b.download(blob.hex(), out)).isEqualTo(blob.size());
    }
    assertThat(storageAuth).hasSize(2).containsOnly("null");
    assertThat(frontAuth).contains(BASIC);
  }

  @Test
  void redirectToTheSameOrigin_keepsAuthorization() throws Exception {
    sameOrigin = true;
    try (BlobBackend b = open()) {
      ByteBuffer dst = ByteBuffer.allocate(1000);
      assertThat(b.read(blob.hex(), 0, dst)).isEqualTo(1000);
      assertThat(dst.array()).isEqualTo(blob.bytes(0, 1000));
    }
    assertThat(storageAuth).isEmpty();
    assertThat(frontAuth).last().isEqualTo(BASIC);
  }

  @Test
  void sameOrigin_comparesSchemeHostAndPort() {
    java.net.URI base = java.net.URI.create("http://127.0.0.1:5000");
    assertThat(RegistryStore.sameOrigin(java.net.URI.create("http://127.0.0.1:5000/x"), base)).isTrue();
    assertThat(RegistryStore.sameOrigin(java.net.URI.create("http://localhost:5000/x"), base)).isFalse();
    assertThat(RegistryStore.sameOrigin(java.net.URI.create("http://127.0.0.1:5001/x"), base)).isFalse();
    assertThat(RegistryStore.sameOrigin(java.net.URI.create("https://127.0.0.1:5000/x"), base)).isFalse();
    assertThat(RegistryStore.sameOrigin(java.net.URI.create("https://r.example/x"),
        java.net.URI.create("https://r.example:443"))).isTrue();
  }
}
