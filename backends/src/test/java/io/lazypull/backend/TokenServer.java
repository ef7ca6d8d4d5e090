package io.lazypull.backend;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A token endpoint for the registry's {@code auth.token} mode, in the JDK's HttpServer on
 * 127.0.0.1: checks Basic credentials (when set), and answers {@code {"token", "expires_in"}}
 * with an RS256 JWT carrying the requested {@code access}, signed by a key whose self-signed
 * certificate (generated with the JDK's keytool) is the registry's {@code rootcertbundle}.
 *
 * <p>Knobs for tests: {@link #nextLifetime} sets how long the next token's {@code exp} is from
 * now (negative: already expired, which the registry rejects even though {@code expires_in}
 * says otherwise); {@link #expiresIn} is what the answer claims.
 */
final class TokenServer implements AutoCloseable {
  static final String SERVICE = "lazypull-test-registry";
  static final String ISSUER = "lazypull-test-issuer";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final HttpServer server;
  private final PrivateKey key;
  private final X509Certificate cert;
  private final Path certPem;
  private final String user;
  private final String password;
  final AtomicInteger issued = new AtomicInteger();
  final AtomicInteger refused = new AtomicInteger();
  final List<String> scopes = new CopyOnWriteArrayList<>();
  final List<String> authorizationSeen = new CopyOnWriteArrayList<>();
  volatile Duration nextLifetime = Duration.ofHours(1);
  volatile long expiresIn = 300;
  volatile String lastToken;

  private TokenServer(Path dir, String user, String password) throws Exception {
    this.user = user;
    this.password = password;
    Path store = dir.resolve("token.p12");
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
        "-genkeypair", "-alias", "token", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
        "-dname", "CN=lazypull-test-token", "-keystore", store.toString(), "-storetype", "PKCS12",
        "-storepass", "changeit", "-keypass", "changeit")
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IllegalStateException("keytool failed: " + out);
    }
    KeyStore ks = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(store)) {
      ks.load(in, "changeit".toCharArray());
    }
    this.key = (PrivateKey) ks.getKey("token", "changeit".toCharArray());
    this.cert = (X509Certificate) ks.getCertificate("token");
    this.certPem = dir.resolve("token-cert.pem");
    Files.writeString(certPem, "-----BEGIN CERTIFICATE-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(cert.getEncoded())
        + "\n-----END CERTIFICATE-----\n");
    this.server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
    server.createContext("/token", this::handle);
    server.start();
  }

  /** A token server that insists on Basic {@code user:password} (null: anyone gets a token). */
  static TokenServer start(Path dir, String user, String password) throws Exception {
    return new TokenServer(dir, user, password);
  }

  String realm() {
    return "http://127.0.0.1:" + server.getAddress().getPort() + "/token";
  }

  Path certificatePem() {
    return certPem;
  }

  private void handle(HttpExchange ex) throws IOException {
    try (ex) {
      String auth = ex.getRequestHeaders().getFirst("Authorization");
      authorizationSeen.add(auth == null ? "" : auth);
      if (user != null) {
        String want = "Basic " + Base64.getEncoder().encodeToString(
            (user + ":" + password).getBytes(StandardCharsets.UTF_8));
        if (!want.equals(auth)) {
          refused.incrementAndGet();
          ex.getResponseHeaders().add("WWW-Authenticate", "Basic realm=\"token\"");
          ex.sendResponseHeaders(401, -1);
          return;
        }
      }
      List<Map<String, Object>> access = new ArrayList<>();
      String query = ex.getRequestURI().getRawQuery();
      for (String pair : query == null ? new String[0] : query.split("&")) {
        if (!pair.startsWith("scope=")) {
          continue;
        }
        String scope = URLDecoder.decode(pair.substring(6), StandardCharsets.UTF_8);
        scopes.add(scope);
        String[] parts = scope.split(":"); // repository:NAME:pull,push
        if (parts.length == 3) {
          Map<String, Object> a = new LinkedHashMap<>();
          a.put("type", parts[0]);
          a.put("name", parts[1]);
          a.put("actions", List.of(parts[2].split(",")));
          access.add(a);
        }
      }
      String jwt = sign(access, nextLifetime);
      lastToken = jwt;
      issued.incrementAndGet();
      byte[] body = JSON.writeValueAsBytes(Map.of("token", jwt, "access_token", jwt,
          "expires_in", expiresIn, "issued_at", Instant.now().toString()));
      ex.getResponseHeaders().add("Content-Type", "application/json");
      ex.sendResponseHeaders(200, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    } catch (Exception e) {
      throw new IOException(e);
    }
  }

  private String sign(List<Map<String, Object>> access, Duration lifetime) throws Exception {
    Base64.Encoder b64url = Base64.getUrlEncoder().withoutPadding();
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("typ", "JWT");
    header.put("alg", "RS256");
    header.put("x5c", List.of(Base64.getEncoder().encodeToString(cert.getEncoded())));
    long now = Instant.now().getEpochSecond();
    long exp = now + lifetime.getSeconds();
    Map<String, Object> claims = new LinkedHashMap<>();
    claims.put("iss", ISSUER);
    claims.put("sub", user == null ? "anonymous" : user);
    claims.put("aud", SERVICE);
    claims.put("exp", exp);
    claims.put("nbf", Math.min(now, exp) - 600);
    claims.put("iat", Math.min(now, exp) - 600);
    claims.put("jti", UUID.randomUUID().toString());
    claims.put("access", access);
    String signingInput = b64url.encodeToString(JSON.writeValueAsBytes(header)) + "."
        + b64url.encodeToString(JSON.writeValueAsBytes(claims));
    Signature s = Signature.getInstance("SHA256withRSA");
    s.initSign(key);
    s.update(signingInput.getBytes(StandardCharsets.US_ASCII));
    return signingInput + "." + b64url.encodeToString(s.sign());
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
