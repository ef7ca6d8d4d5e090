package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.net.ProxySelector;
import java.net.URI;
import java.net.URLDecoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpRequest.BodyPublisher;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Blobs in one repository of an OCI distribution registry, through java.net.http.
 *
 * <pre>
 * oci://HOST[:PORT]/REPOSITORY        https
 * oci+http://HOST[:PORT]/REPOSITORY   plain http (a local or test registry)
 *
 * size      HEAD /v2/REPOSITORY/blobs/sha256:HEX                     -> Content-Length
 * read      GET  /v2/REPOSITORY/blobs/sha256:HEX  Range: bytes=a-b   -> 206 (416: past the end)
 * put       POST /v2/REPOSITORY/blobs/uploads/                       -> 202 Location: L
 *           small: PUT L?digest=sha256:HEX with the body              -> 201
 *           large: PATCH L (Content-Range a-b) per chunk -> 202 Location: L'; then PUT L'?digest=
 * manifest  GET  /v2/REPOSITORY/manifests/TAG|sha256:HEX  Accept: OCI + Docker schema 2 types
 *           PUT  /v2/REPOSITORY/manifests/TAG|sha256:HEX  Content-Type: its media type -> 201
 * </pre>
 *
 * Redirects (to object storage, typically) are followed here, not by the HTTP client, so that
 * the Authorization header only ever goes to the registry's own origin. {@code docker.io} is
 * an alias for Docker Hub's registry host.
 */
final class RegistryStore implements Store {
  private static final Logger log = LoggerFactory.getLogger(RegistryStore.class);
  private static final int MAX_REDIRECTS = 5;
  private static final Pattern CONTENT_RANGE = Pattern.compile("bytes (\\d+)-(\\d+)/(\\d+|\\*)");
  /** A tag, as the distribution spec allows it. */
  static final Pattern TAG = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  private static final String ACCEPT = String.join(", ", Manifest.ACCEPTED);
  /** A repository name, as the distribution spec allows it. */
  static final Pattern REPOSITORY =
      Pattern.compile("[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*");

  private final URI base; // scheme://host:port
  private final String repository;
  private final String description;
  private final HttpClient http;
  private final RegistryAuth auth;
  private final BackendOptions options;
  private final String pullScope;
  private final String pushScope;

  RegistryStore(URI uri, BackendOptions options) {
    this.options = options;
    boolean plain = uri.getScheme().equalsIgnoreCase("oci+http");
    String host = uri.getHost();
    if (host == null) {
      throw new IllegalArgumentException("registry backend URI needs a host: "
          + "oci://HOST[:PORT]/REPOSITORY, got " + uri.getScheme() + "://" + uri.getRawAuthority());
    }
    if (host.equalsIgnoreCase("docker.io") || host.equalsIgnoreCase("index.docker.io")) {
      host = DockerConfig.DOCKER_HUB;
    }
    String hostPort = host.toLowerCase(Locale.ROOT) + (uri.getPort() >= 0 ? ":" + uri.getPort() : "");
    String repo = uri.getPath() == null ? "" : uri.getPath().replaceAll("^/+|/+$", "");
    if (!REPOSITORY.matcher(repo).matches()) {
      throw new IllegalArgumentException("not a repository name: '" + repo
          + "' (lowercase letters, digits, separators . _ - and / between components)");
    }
    if (uri.getRawQuery() != null) {
      throw new IllegalArgumentException("registry backend URIs take no options: ?"
          + uri.getRawQuery().replaceAll("=[^&]*", "=..."));
    }
    this.repository = repo;
    this.base = URI.create((plain ? "http" : "https") + "://" + hostPort);
    this.description = uri.getScheme().toLowerCase(Locale.ROOT) + "://" + hostPort + "/" + repo;
    this.pullScope = "repository:" + repo + ":pull";
    this.pushScope = "repository:" + repo + ":pull,push";
    this.http = HttpClient.newBuilder()
        .connectTimeout(options.connectTimeout())
        .followRedirects(HttpClient.Redirect.NEVER)
        .version(HttpClient.Version.HTTP_1_1)
        .proxy(ProxySelector.getDefault())
        .build();
    Optional<DockerConfig.Found> creds = credentials(uri, hostPort, options);
    this.auth = new RegistryAuth(description, creds.map(DockerConfig.Found::credentials).orElse(null),
        creds.map(DockerConfig.Found::source).orElse(null), plain, http, options);
  }

  /**
   * Explicit credentials, then user:password@ in the URI, then LAZYPULL_REGISTRY_USERNAME and
   * LAZYPULL_REGISTRY_PASSWORD, then the docker config (auths, credHelpers, credsStore).
   */
  private static Optional<DockerConfig.Found> credentials(URI uri, String hostPort,
      BackendOptions options) {
    if (options.credentials() != null) {
      return Optional.of(new DockerConfig.Found(options.credentials(), "the backend options"));
    }
    String info = uri.getRawUserInfo();
    if (info != null && info.contains(":")) {
      int colon = info.indexOf(':');
      return Optional.of(new DockerConfig.Found(new Credentials(
          URLDecoder.decode(info.substring(0, colon), StandardCharsets.UTF_8),
          URLDecoder.decode(info.substring(colon + 1), StandardCharsets.UTF_8)), "the URI"));
    }
    Map<String, String> env = options.environment();
    String user = env.get("LAZYPULL_REGISTRY_USERNAME");
    String pass = env.get("LAZYPULL_REGISTRY_PASSWORD");
    if (user != null && !user.isEmpty() && pass != null && !pass.isEmpty()) {
      return Optional.of(new DockerConfig.Found(new Credentials(user, pass),
          "LAZYPULL_REGISTRY_USERNAME/LAZYPULL_REGISTRY_PASSWORD"));
    }
    return DockerConfig.lookup(hostPort, env);
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public boolean remote() {
    return true;
  }

  private URI blobUri(String hex) {
    return base.resolve("/v2/" + repository + "/blobs/sha256:" + hex);
  }

  @Override
  public long size(String hex, Call call) throws IOException {
    HttpResponse<InputStream> resp = exchange("size", hex, "HEAD", blobUri(hex),
        BodyPublishers.noBody(), null, pullScope, call);
    try {
      if (resp.statusCode() != 200) {
        throw failure("size", hex, resp);
      }
      OptionalLong len = resp.headers().firstValueAsLong("Content-Length");
      if (len.isEmpty()) {
        throw new BackendException(Kind.PERMANENT, description, "size", hex, 200,
            "HEAD answered without a Content-Length", null);
      }
      return len.getAsLong();
    } finally {
      resp.body().close();
    }
  }

  @Override
  public int read(String hex, long offset, ByteBuffer dst, Call call) throws IOException {
    long last = offset + dst.remaining() - 1;
    HttpResponse<InputStream> resp = exchange("read", hex, "GET", blobUri(hex),
        BodyPublishers.noBody(), "bytes=" + offset + "-" + last, pullScope, call);
    try (InputStream in = resp.body()) {
      int status = resp.statusCode();
      long expected;
      if (status == 416) {
        return -1;
      } else if (status == 206) {
        expected = rangeLength(resp).orElse(dst.remaining());
      } else if (status == 200) {
        // The server ignored Range and sends the whole blob: skip to the offset.
        long total = resp.headers().firstValueAsLong("Content-Length").orElse(Long.MAX_VALUE);
        if (offset >= total) {
          return -1;
        }
        in.skipNBytes(offset);
        expected = Math.min(dst.remaining(), total - offset);
      } else {
        throw failure("read", hex, resp);
      }
      int n = Io.readInto(in, dst, expected, call);
      if (n < expected) {
        throw shortRead("read", hex, offset, n, expected);
      }
      return n;
    }
  }

  /** The length a 206 promises: Content-Length, or the span of Content-Range. */
  private static OptionalLong rangeLength(HttpResponse<?> resp) {
    OptionalLong len = resp.headers().firstValueAsLong("Content-Length");
    if (len.isPresent()) {
      return len;
    }
    Optional<String> cr = resp.headers().firstValue("Content-Range");
    if (cr.isPresent()) {
      Matcher m = CONTENT_RANGE.matcher(cr.get());
      if (m.matches()) {
        return OptionalLong.of(Long.parseLong(m.group(2)) - Long.parseLong(m.group(1)) + 1);
      }
    }
    return OptionalLong.empty();
  }

  @Override
  public void transferTo(String hex, long offset, long end, WritableByteChannel out, Call call)
      throws IOException {
    String range = end != Long.MAX_VALUE ? "bytes=" + offset + "-" + (end - 1)
        : offset > 0 ? "bytes=" + offset + "-" : null;
    HttpResponse<InputStream> resp = exchange("transfer", hex, "GET", blobUri(hex),
        BodyPublishers.noBody(), range, pullScope, call);
    try (InputStream in = resp.body()) {
      int status = resp.statusCode();
      if (status == 416 && offset > 0) {
        return;
      }
      if (status == 200 && offset > 0) {
        in.skipNBytes(offset);
      } else if (status != 200 && status != 206) {
        throw failure("transfer", hex, resp);
      }
      OptionalLong len = resp.headers().firstValueAsLong("Content-Length");
      long expected = len.isPresent() ? len.getAsLong() - (status == 200 ? offset : 0) : -1;
      if (expected > end - offset) {
        expected = end - offset; // a 200 for a ranged request: the whole blob, of which we copy the range
      }
      long n = Io.copy(in, out, end - offset, call);
      if (expected >= 0 && n < expected) {
        throw shortRead("transfer", hex, offset, n, expected);
      }
    }
  }

  @Override
  public void put(String hex, Path file, long size, Call call) throws IOException {
    String op = "put";
    URI location = startUpload(hex, call);
    boolean done = false;
    try {
      if (size <= options.multipartThreshold()) {
        HttpResponse<InputStream> resp = exchange(op, hex, "PUT", withDigest(location, hex),
            body(file, 0, size, call), null, pushScope, call);
        expect(op, hex, resp, 201);
      } else {
        long partSize = options.partSize();
        for (long off = 0; off < size; off += partSize) {
          long len = Math.min(partSize, size - off);
          HttpResponse<InputStream> resp = exchange(op, hex, "PATCH", location,
              body(file, off, len, call), null, pushScope, call,
              "Content-Range", off + "-" + (off + len - 1));
          location = nextLocation(op, hex, resp, location);
        }
        HttpResponse<InputStream> resp = exchange(op, hex, "PUT", withDigest(location, hex),
            BodyPublishers.noBody(), null, pushScope, call);
        expect(op, hex, resp, 201);
      }
      done = true;
    } finally {
      if (!done) {
        cancelUpload(location, hex);
      }
    }
  }

  private URI startUpload(String hex, Call call) throws IOException {
    URI uploads = base.resolve("/v2/" + repository + "/blobs/uploads/");
    HttpResponse<InputStream> resp = exchange("put", hex, "POST", uploads,
        BodyPublishers.noBody(), null, pushScope, call);
    return nextLocation("put", hex, resp, uploads);
  }

  /** Checks a 202 and returns its Location, resolved against where we sent the request. */
  private URI nextLocation(String op, String hex, HttpResponse<InputStream> resp, URI sentTo)
      throws IOException {
    try {
      if (resp.statusCode() != 202) {
        throw failure(op, hex, resp);
      }
      String loc = resp.headers().firstValue("Location").orElseThrow(() -> new BackendException(
          Kind.PERMANENT, description, op, hex, 202, "upload answered without a Location", null));
      return sentTo.resolve(loc);
    } finally {
      resp.body().close();
    }
  }

  private void expect(String op, String hex, HttpResponse<InputStream> resp, int status)
      throws IOException {
    try {
      if (resp.statusCode() != status) {
        throw failure(op, hex, resp);
      }
    } finally {
      resp.body().close();
    }
  }

  private void cancelUpload(URI location, String hex) {
    if (location.getPath().endsWith("/blobs/uploads/")) {
      return; // never started
    }
    try {
      HttpResponse<InputStream> resp = exchange("put", hex, "DELETE", location,
          BodyPublishers.noBody(), null, pushScope, new Call());
      resp.body().close();
    } catch (IOException | RuntimeException e) {
      log.debug("{}: could not cancel the upload of sha256:{}: {}", description, hex, e.toString());
    }
  }

  private static URI withDigest(URI location, String hex) {
    String s = location.toString();
    return URI.create(s + (location.getRawQuery() == null ? "?" : "&") + "digest=sha256:" + hex);
  }

  private static BodyPublisher body(Path file, long offset, long length, Call call) {
    if (length == 0) {
      return BodyPublishers.noBody();
    }
    return BodyPublishers.fromPublisher(
        BodyPublishers.ofInputStream(() -> Io.fileRange(file, offset, length, call)), length);
  }

  @Override
  public boolean hasManifestApi() {
    return true;
  }

  private URI manifestUri(String reference) {
    if (!reference.startsWith(Digests.SHA256_PREFIX) && !TAG.matcher(reference).matches()) {
      throw new IllegalArgumentException("not a tag or digest: '" + reference
          + "' (a tag is 1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)");
    }
    return base.resolve("/v2/" + repository + "/manifests/" + reference);
  }

  /**
   * GET with every manifest and index type lazypull reads in Accept (a registry answers 404 for
   * an OCI index the client does not say it accepts). The media type is the Content-Type, or
   * what the JSON declares when the registry says only application/json. A Docker-Content-Digest
   * that does not match the bytes is a PERMANENT failure: the bytes are never returned.
   */
  @Override
  public Manifest getManifest(String reference, Call call) throws IOException {
    String op = "manifest " + reference;
    HttpResponse<InputStream> resp = exchange(op, null, "GET", manifestUri(reference),
        BodyPublishers.noBody(), null, pullScope, call, "Accept", ACCEPT);
    try (InputStream in = resp.body()) {
      if (resp.statusCode() != 200) {
        throw failure(op, null, resp);
      }
      OptionalLong len = resp.headers().firstValueAsLong("Content-Length");
      if (len.isPresent() && len.getAsLong() > Manifest.MAX_SIZE) {
        throw new BackendException(Kind.PERMANENT, description, op, null, 200,
            "manifest of " + len.getAsLong() + " bytes is larger than " + Manifest.MAX_SIZE, null);
      }
      byte[] bytes = in.readNBytes(Manifest.MAX_SIZE + 1);
      call.progress();
      if (bytes.length > Manifest.MAX_SIZE) {
        throw new BackendException(Kind.PERMANENT, description, op, null, 200,
            "manifest larger than " + Manifest.MAX_SIZE + " bytes", null);
      }
      if (len.isPresent() && bytes.length < len.getAsLong()) {
        throw shortRead(op, null, 0, bytes.length, len.getAsLong());
      }
      String type = resp.headers().firstValue("Content-Type").orElse("")
          .replaceAll(";.*", "").trim().toLowerCase(Locale.ROOT);
      Manifest m = new Manifest(type.isEmpty() ? "application/json" : type, bytes);
      if (type.isEmpty() || type.equals("application/json") || type.equals("text/plain")) {
        String declared = Manifest.sniff(m.json(description));
        if (declared != null) {
          m = new Manifest(declared, bytes);
        }
      }
      Optional<String> announced = resp.headers().firstValue("Docker-Content-Digest");
      if (announced.isPresent() && !announced.get().trim().equals(m.digest())) {
        throw new BackendException(Kind.PERMANENT, description, op, null, 200,
            "the registry announced " + announced.get().trim() + " but sent bytes with "
                + m.digest(), null);
      }
      return m;
    }
  }

  @Override
  public void putManifest(String reference, Manifest manifest, Call call) throws IOException {
    String op = "put manifest " + reference;
    HttpResponse<InputStream> resp = exchange(op, null, "PUT", manifestUri(reference),
        BodyPublishers.ofByteArray(manifest.bytes()), null, pushScope, call,
        "Content-Type", manifest.mediaType());
    try {
      if (resp.statusCode() != 201) {
        throw failure(op, null, resp);
      }
      Optional<String> stored = resp.headers().firstValue("Docker-Content-Digest");
      if (stored.isPresent() && !stored.get().trim().equals(manifest.digest())) {
        throw new BackendException(Kind.PERMANENT, description, op, null, 201,
            "the registry stored " + stored.get().trim() + " instead of " + manifest.digest(), null);
      }
    } finally {
      resp.body().close();
    }
  }

  @Override
  public void close() {
    // java.net.http.HttpClient (Java 17) has no close; its threads end with it.
  }

  /*
   * One request: authentication, then redirects. A 401 from the registry's origin gets one
   * re-authentication (new token, or switching to basic) and one repeat of the whole request.
   * Redirects to another origin drop the Authorization header.
   */
  private HttpResponse<InputStream> exchange(String op, String hex, String method, URI uri,
      BodyPublisher body, String range, String scope, Call call, String... extraHeaders)
      throws IOException {
    boolean reauthenticated = false;
    while (true) {
      URI target = uri;
      String sent = null;
      HttpResponse<InputStream> resp;
      for (int hop = 0; ; hop++) {
        boolean ownOrigin = sameOrigin(target, base);
        HttpRequest.Builder b = HttpRequest.newBuilder(target)
            .timeout(options.readTimeout())
            .method(method, hop == 0 ? body : BodyPublishers.noBody());
        if (range != null) {
          b.header("Range", range);
        }
        if (hop == 0 && !method.equals("GET") && !method.equals("HEAD")
            && !method.equals("DELETE") && !hasHeader(extraHeaders, "Content-Type")) {
          b.header("Content-Type", "application/octet-stream");
        }
        for (int i = 0; i + 1 < extraHeaders.length; i += 2) {
          b.header(extraHeaders[i], extraHeaders[i + 1]);
        }
        sent = null;
        if (ownOrigin) {
          sent = auth.header(scope, op, hex);
          if (sent != null) {
            b.header("Authorization", sent);
          }
        }
        resp = send(b.build(), op, hex);
        InputStream respBody = resp.body();
        call.onAbort(respBody::close);
        int status = resp.statusCode();
        Optional<String> location = resp.headers().firstValue("Location");
        boolean redirect = (status == 301 || status == 302 || status == 303 || status == 307
            || status == 308) && location.isPresent()
            && (method.equals("GET") || method.equals("HEAD"));
        if (!redirect) {
          break;
        }
        respBody.close();
        if (hop >= MAX_REDIRECTS) {
          throw new BackendException(Kind.PERMANENT, description, op, hex, status,
              "more than " + MAX_REDIRECTS + " redirects", null);
        }
        URI next = target.resolve(location.get());
        log.trace("{}: {} redirected to {}://{}:{}", description, op, next.getScheme(),
            next.getHost(), port(next)); // never the query: it may hold a signature
        target = next;
      }
      if (resp.statusCode() == 401 && sameOrigin(target, base)) {
        String challenge = resp.headers().firstValue("WWW-Authenticate").orElse(null);
        resp.body().close();
        if (reauthenticated) {
          throw auth.rejected(op, hex);
        }
        auth.unauthorized(challenge, scope, sent, op, hex);
        reauthenticated = true;
        continue;
      }
      return resp;
    }
  }

  private HttpResponse<InputStream> send(HttpRequest req, String op, String hex)
      throws IOException {
    try {
      return http.send(req, HttpResponse.BodyHandlers.ofInputStream());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException(description + ": " + op + " sha256:" + hex + ": interrupted");
    } catch (IOException e) {
      throw new BackendException(Kind.TRANSIENT, description, op, hex, 0, ManagedBackend.describe(e), e);
    }
  }

  private static boolean hasHeader(String[] headers, String name) {
    for (int i = 0; i + 1 < headers.length; i += 2) {
      if (headers[i].equalsIgnoreCase(name)) {
        return true;
      }
    }
    return false;
  }

  static boolean sameOrigin(URI a, URI b) {
    return a.getScheme().equalsIgnoreCase(b.getScheme())
        && a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost())
        && port(a) == port(b);
  }

  private static int port(URI u) {
    if (u.getPort() >= 0) {
      return u.getPort();
    }
    return u.getScheme().equalsIgnoreCase("https") ? 443 : 80;
  }

  private BackendException shortRead(String op, String hex, long offset, long got, long expected) {
    return new BackendException(Kind.TRANSIENT, description, op, hex, 0, "response ended after "
        + got + " of " + expected + " bytes (from offset " + offset + ")", null);
  }

  /** Maps an unexpected status to a kind, with the registry's error code and message. */
  private BackendException failure(String op, String hex, HttpResponse<InputStream> resp) {
    int status = resp.statusCode();
    String detail = errorDetail(resp);
    Kind kind;
    if (status == 404 && !op.startsWith("put")) {
      kind = Kind.NOT_FOUND;
    } else if (Io.transientStatus(status)) {
      kind = Kind.TRANSIENT;
    } else {
      kind = Kind.PERMANENT;
    }
    if (status == 401) {
      return auth.rejected(op, hex);
    }
    if (status == 403) {
      detail = (detail.isEmpty() ? "denied" : detail) + " " + auth.who();
    }
    if (detail.isEmpty()) {
      detail = kind == Kind.NOT_FOUND ? "not found" : "unexpected answer";
    }
    return new BackendException(kind, description, op, hex, status, detail, null);
  }

  /** "BLOB_UNKNOWN: blob unknown to registry" from an OCI error body, else "". */
  private static String errorDetail(HttpResponse<InputStream> resp) {
    try (InputStream in = resp.body()) {
      byte[] body = in.readNBytes(16 << 10);
      if (body.length == 0) {
        return "";
      }
      JsonNode first = Json.MAPPER.readTree(body).path("errors").path(0);
      String code = first.path("code").asText("");
      String message = first.path("message").asText("");
      return code.isEmpty() ? message : message.isEmpty() ? code : code + ": " + message;
    } catch (IOException | RuntimeException e) {
      return "";
    }
  }
}
