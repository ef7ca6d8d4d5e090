package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Registry authentication, driven by the registry's challenges:
 *
 *   request without Authorization ---> 401  WWW-Authenticate: Basic realm="..."
 *       with credentials: send "Basic base64(user:pass)" from now on; without: PERMANENT
 *   request without Authorization ---> 401  WWW-Authenticate: Bearer realm=R,service=S,scope=X
 *       GET R?service=S&scope=repository:REPO:pull[,push]   (Basic credentials if we have them)
 *       <--- {"token": T, "expires_in": N}
 *       send "Bearer T" for that scope until N seconds minus a margin have passed (by the
 *       injected clock), then fetch a new one before the next request
 *   request with a token ---> 401 (token expired or revoked early)
 *       fetch a new token once and repeat the request; a second 401 is PERMANENT
 *
 * Tokens are cached per scope ("pull" for reads, "pull,push" for uploads). Credentials go to
 * the token realm only over https, or when the registry itself is plain http (the user chose
 * cleartext). Nothing here logs or puts a secret in a message.
 */

/** Basic and bearer-token authentication against one registry. */
final class RegistryAuth {
  private static final Logger log = LoggerFactory.getLogger(RegistryAuth.class);
  private static final Duration MAX_REFRESH_MARGIN = Duration.ofSeconds(30);

  enum Scheme { NONE, BASIC, BEARER }

  record Token(String header, Instant expiresAt, Instant refreshAt) {}

  private final String backend;
  private final Credentials credentials; // null: anonymous
  private final String credentialSource; // where they came from, for messages
  private final boolean plainHttp;
  private final HttpClient http;
  private final BackendOptions options;

  private volatile Scheme scheme = Scheme.NONE;
  private volatile String realm;
  private volatile String service;
  private final Map<String, Token> tokens = new ConcurrentHashMap<>();
  private final Object refreshLock = new Object();

  RegistryAuth(String backend, Credentials credentials, String credentialSource, boolean plainHttp,
      HttpClient http, BackendOptions options) {
    this.backend = backend;
    this.credentials = credentials;
    this.credentialSource = credentialSource;
    this.plainHttp = plainHttp;
    this.http = http;
    this.options = options;
  }

  boolean hasCredentials() {
    return credentials != null;
  }

  /** Who we authenticate as, for messages: "user 'bob' (from ~/.docker/config.json)". */
  String who() {
    return credentials == null ? "anonymously"
        : "as user '" + credentials.username() + "' (credentials from " + credentialSource + ")";
  }

  /**
   * The Authorization header value to send for {@code scope} now, or null. A bearer token that
   * is about to expire is replaced first.
   */
  String header(String scope, String op, String hex) throws IOException {
    switch (scheme) {
      case BASIC:
        return basic();
      case BEARER:
        Token t = tokens.get(scope);
        if (t == null || !options.clock().instant().isBefore(t.refreshAt())) {
          t = refresh(scope, null, null, op, hex);
        }
        return t.header();
      default:
        return null;
    }
  }

  /**
   * Handles a 401 to a request that carried {@code sent} (null: no Authorization): switches to
   * the challenged scheme, or fetches a new token. Throws PERMANENT when it cannot help.
   */
  void unauthorized(String challenge, String scope, String sent, String op, String hex)
      throws IOException {
    Map<String, String> c = parseChallenge(challenge);
    String type = c.getOrDefault("", "");
    if (type.equals("basic")) {
      if (credentials == null) {
        throw new BackendException(Kind.PERMANENT, backend, op, hex, 401,
            "authentication required and no credentials for this registry (use docker login, "
                + "LAZYPULL_REGISTRY_USERNAME/LAZYPULL_REGISTRY_PASSWORD, or user:password@ in the URI)",
            null);
      }
      if (sent != null && sent.startsWith("Basic ")) {
        throw rejected(op, hex);
      }
      scheme = Scheme.BASIC;
      return;
    }
    if (type.equals("bearer")) {
      String r = c.get("realm");
      if (r == null || r.isEmpty()) {
        throw new BackendException(Kind.PERMANENT, backend, op, hex, 401,
            "bearer challenge without a realm", null);
      }
      realm = r;
      service = c.get("service");
      if ("insufficient_scope".equals(c.get("error")) && sent != null) {
        throw new BackendException(Kind.PERMANENT, backend, op, hex, 401,
            "insufficient scope for " + scope + " " + who(), null);
      }
      refresh(scope, c.get("scope"), sent, op, hex);
      scheme = Scheme.BEARER;
      return;
    }
    if (challenge == null) {
      throw new BackendException(Kind.PERMANENT, backend, op, hex, 401,
          "unauthorized, and the registry sent no WWW-Authenticate challenge", null);
    }
    throw new BackendException(Kind.PERMANENT, backend, op, hex, 401,
        "unsupported authentication scheme '" + type + "'", null);
  }

  /** A 401 that outlived one re-authentication. */
  BackendException rejected(String op, String hex) {
    return new BackendException(Kind.PERMANENT, backend, op, hex, 401,
        credentials == null ? "unauthorized (no credentials for this registry)"
            : "credentials rejected " + who(), null);
  }

  private String basic() {
    return "Basic " + Base64.getEncoder().encodeToString(
        (credentials.username() + ":" + credentials.secret()).getBytes(StandardCharsets.UTF_8));
  }

  /**
   * Fetches a token for {@code scope} unless another thread has just replaced the one that
   * failed ({@code failed}); one fetch at a time.
   */
  private Token refresh(String scope, String challengeScope, String failed, String op, String hex)
      throws IOException {
    synchronized (refreshLock) {
      Token current = tokens.get(scope);
      Instant now = options.clock().instant();
      if (current != null && now.isBefore(current.refreshAt())
          && (failed == null ? true : !current.header().equals(failed))) {
        return current;
      }
      Token t = fetchToken(scope, challengeScope, op, hex);
      tokens.put(scope, t);
      return t;
    }
  }

  private Token fetchToken(String scope, String challengeScope, String op, String hex)
      throws IOException {
    String r = realm;
    if (r == null) {
      throw new BackendException(Kind.PERMANENT, backend, op, hex, 401, "no token realm known", null);
    }
    StringBuilder url = new StringBuilder(r).append(r.contains("?") ? '&' : '?');
    if (service != null) {
      url.append("service=").append(enc(service)).append('&');
    }
    url.append("scope=").append(enc(scope));
    if (challengeScope != null && !challengeScope.isEmpty() && !challengeScope.equals(scope)) {
      url.append("&scope=").append(enc(challengeScope));
    }
    URI uri;
    try {
      uri = URI.create(url.toString());
    } catch (IllegalArgumentException e) {
      throw new BackendException(Kind.PERMANENT, backend, op, hex, 0,
          "bad token realm in the registry's challenge", e);
    }
    String where = "token endpoint " + uri.getScheme() + "://" + uri.getRawAuthority() + uri.getRawPath();
    HttpRequest.Builder b = HttpRequest.newBuilder(uri).GET().timeout(options.readTimeout());
    if (credentials != null) {
      if ("https".equalsIgnoreCase(uri.getScheme()) || plainHttp) {
        b.header("Authorization", basic());
      } else {
        log.warn("{}: not sending credentials to the plain-http {}", backend, where);
      }
    }
    HttpResponse<InputStream> resp;
    try {
      resp = http.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException(backend + ": interrupted while fetching a token");
    } catch (IOException e) {
      throw new BackendException(Kind.TRANSIENT, backend, op, hex, 0,
          where + ": " + ManagedBackend.describe(e), e);
    }
    int status = resp.statusCode();
    byte[] body;
    try (InputStream in = resp.body()) {
      body = in.readNBytes(1 << 20);
    }
    if (status != 200) {
      Kind kind = Io.transientStatus(status) ? Kind.TRANSIENT : Kind.PERMANENT;
      String why = status == 401 || status == 403 ? " refused to issue a token " + who() : " failed";
      throw new BackendException(kind, backend, op, hex, status, where + why, null);
    }
    JsonNode json;
    try {
      json = Json.MAPPER.readTree(body);
    } catch (IOException e) {
      throw new BackendException(Kind.PERMANENT, backend, op, hex, status,
          where + " answered something that is not JSON", null);
    }
    String token = json.path("token").asText("");
    if (token.isEmpty()) {
      token = json.path("access_token").asText("");
    }
    if (token.isEmpty()) {
      throw new BackendException(Kind.PERMANENT, backend, op, hex, status,
          where + " answered without a token", null);
    }
    long expiresIn = json.path("expires_in").asLong(60);
    if (expiresIn <= 0) {
      expiresIn = 60;
    }
    Instant now = options.clock().instant();
    Duration life = Duration.ofSeconds(expiresIn);
    Duration margin = life.dividedBy(4).compareTo(MAX_REFRESH_MARGIN) < 0 ? life.dividedBy(4)
        : MAX_REFRESH_MARGIN;
    log.debug("{}: got a token for {} from {}, expires in {} s", backend, scope, where, expiresIn);
    return new Token("Bearer " + token, now.plus(life), now.plus(life).minus(margin));
  }

  private static String enc(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8);
  }

  /**
   * Parses {@code Bearer realm="https://a/token",service="reg",scope="repository:x:pull"} into
   * a map; the scheme, lowercased, is under the key "". Quoted values may contain commas.
   */
  static Map<String, String> parseChallenge(String header) {
    Map<String, String> out = new LinkedHashMap<>();
    if (header == null) {
      return out;
    }
    String h = header.trim();
    int sp = h.indexOf(' ');
    out.put("", (sp < 0 ? h : h.substring(0, sp)).toLowerCase(Locale.ROOT));
    if (sp < 0) {
      return out;
    }
    int i = sp + 1;
    int n = h.length();
    while (i < n) {
      while (i < n && (h.charAt(i) == ' ' || h.charAt(i) == ',')) {
        i++;
      }
      int eq = h.indexOf('=', i);
      if (eq < 0) {
        break;
      }
      String key = h.substring(i, eq).trim().toLowerCase(Locale.ROOT);
      i = eq + 1;
      StringBuilder value = new StringBuilder();
      if (i < n && h.charAt(i) == '"') {
        i++;
        while (i < n && h.charAt(i) != '"') {
          if (h.charAt(i) == '\\' && i + 1 < n) {
            i++;
          }
          value.append(h.charAt(i++));
        }
        i++; // closing quote
      } else {
        while (i < n && h.charAt(i) != ',') {
          value.append(h.charAt(i++));
        }
      }
      out.put(key, value.toString().trim());
    }
    return out;
  }
}
