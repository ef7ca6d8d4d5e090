package io.lazypull.backend;

import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AnonymousCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.apache5.Apache5HttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.AwsProfileRegionProvider;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;

/**
 * Blobs as objects in an S3 bucket (AWS or any S3-compatible store), through aws-sdk-java-v2
 * with the Apache HttpClient 5 based client.
 *
 * <pre>
 * s3://BUCKET[/PREFIX][?endpoint=URL][&amp;region=R][&amp;path-style=true][&amp;anonymous=true]
 * object key = PREFIX + "/" + hex   (no prefix: just hex; "a/" and "a" are the same prefix)
 * </pre>
 *
 * Sizes come from HEAD, reads are ranged GETs ({@code bytes=a-b}), uploads are one PUT up to
 * the multipart threshold and a multipart upload above it. The SDK's own retries are off (the
 * {@link ManagedBackend} retries); its default request checksums are off too (WHEN_REQUIRED),
 * because S3-compatible stores such as S3Proxy reject them.
 */
final class S3Store implements Store {
  private static final Logger log = LoggerFactory.getLogger(S3Store.class);
  /** A blob name no blob has (the sha256 of nothing is e3b0...): the warm-up request's key. */
  static final String WARM_UP_HEX = "0".repeat(64);
  private static final int MAX_TAG_SIZE = 64 << 10;
  private static final Set<String> OPTIONS = Set.of("endpoint", "region", "path-style", "anonymous");

  /** Builds the client ({@link #connect}: on first use, not when opened). */
  private final S3ClientBuilder builder;
  private S3Client client; // guarded by this
  private boolean closed; // guarded by this
  private final String bucket;
  private final String prefix;
  private final String description;
  private final BackendOptions options;

  S3Store(URI uri, BackendOptions options) {
    this.options = options;
    this.bucket = uri.getRawAuthority();
    if (bucket == null || bucket.isEmpty() || bucket.contains("@")) {
      throw new IllegalArgumentException("S3 backend URI needs a bucket and no user info: "
          + "s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true], got s3://"
          + (bucket == null ? "" : bucket.replaceAll(".*@", "...@")));
    }
    String path = uri.getPath() == null ? "" : uri.getPath().replaceAll("^/+", "");
    this.prefix = path.isEmpty() || path.endsWith("/") ? path : path + "/";
    Map<String, String> q = Io.query(uri.getRawQuery(), OPTIONS, "s3://" + bucket + "/" + path);
    URI endpoint = q.containsKey("endpoint") ? endpointUri(q.get("endpoint")) : null;
    boolean pathStyle = q.containsKey("path-style") && Io.parseBoolean(q.get("path-style"), "path-style");
    boolean anonymous = q.containsKey("anonymous") && Io.parseBoolean(q.get("anonymous"), "anonymous");
    Region region = region(q.get("region"), endpoint != null);

    StringBuilder d = new StringBuilder("s3://").append(bucket).append('/').append(prefix);
    String sep = "?";
    if (endpoint != null) {
      d.append(sep).append("endpoint=").append(endpoint);
      sep = "&";
    }
    if (q.containsKey("region")) {
      d.append(sep).append("region=").append(region.id());
      sep = "&";
    }
    if (pathStyle) {
      d.append(sep).append("path-style=true");
    }
    this.description = d.toString();

    S3ClientBuilder b = S3Client.builder()
        .httpClientBuilder(Apache5HttpClient.builder()
            .connectionTimeout(options.connectTimeout())
            .socketTimeout(options.readTimeout())
            .maxConnections(options.maxConcurrentRequests()))
        .region(region)
        .forcePathStyle(pathStyle)
        .credentialsProvider(credentials(options, anonymous))
        .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
        .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
        .overrideConfiguration(c -> c.retryStrategy(AwsRetryStrategy.doNotRetry()));
    if (endpoint != null) {
      b.endpointOverride(endpoint);
    } else {
      b.crossRegionAccessEnabled(true); // real AWS: follow the bucket to its region
    }
    this.builder = b;
  }

  @Override
  public void connect() {
    S3Client c = s3();
    // The SDK sets up most of a request's path on the first request (endpoint rules, signing,
    // the pool's first connection): a standby daemon's first fetch after taking over paid for
    // it while readers waited. One request whose answer does not matter (HEAD of a key no blob
    // has) does it now, off the caller's thread: a daemon's start does not wait for it.
    Thread t = new Thread(() -> warmUp(c), "s3-warm-up");
    t.setDaemon(true);
    t.start();
  }

  private void warmUp(S3Client c) {
    long t0 = System.nanoTime();
    String answer;
    try {
      c.headObject(r -> r.bucket(bucket).key(key(WARM_UP_HEX)));
      answer = "found";
    } catch (AwsServiceException e) {
      answer = "HTTP " + e.statusCode(); // 404 (or 403 without ListBucket): as good
    } catch (RuntimeException e) {
      answer = e.toString();
    }
    log.debug("{}: warm-up request answered in {} ms: {}", description, (System.nanoTime() - t0) / 1_000_000, answer);
  }

  /** Whether the client has been built (for tests). */
  synchronized boolean connected() {
    return client != null;
  }

  private synchronized S3Client s3() {
    if (closed) {
      throw new IllegalStateException(description + " is closed");
    }
    if (client == null) {
      client = builder.build();
    }
    return client;
  }

  private static URI endpointUri(String value) {
    URI e;
    try {
      e = URI.create(value);
    } catch (IllegalArgumentException x) {
      throw new IllegalArgumentException("S3 endpoint is not a URL: " + x.getMessage());
    }
    if (e.getScheme() == null || !(e.getScheme().equals("http") || e.getScheme().equals("https"))
        || e.getHost() == null) {
      throw new IllegalArgumentException("S3 endpoint must be an http:// or https:// URL, got '"
          + value + "'");
    }
    if (e.getUserInfo() != null) {
      throw new IllegalArgumentException("S3 endpoint must not carry credentials");
    }
    return e;
  }

  private Region region(String explicit, boolean customEndpoint) {
    if (explicit != null && !explicit.isEmpty()) {
      return Region.of(explicit);
    }
    for (String var : List.of("AWS_REGION", "AWS_DEFAULT_REGION")) {
      String v = options.environment().get(var);
      if (v != null && !v.isBlank()) {
        return Region.of(v.trim());
      }
    }
    if (!customEndpoint) {
      try {
        Region r = new AwsProfileRegionProvider().getRegion();
        if (r != null) {
          return r;
        }
      } catch (RuntimeException noProfile) {
        // No ~/.aws/config region: fall through.
      }
    }
    return Region.US_EAST_1;
  }

  /**
   * Explicit credentials, then anonymous if asked, then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
   * (and AWS_SESSION_TOKEN) from the options' environment, then the SDK's default chain
   * (system properties, env, ~/.aws, web identity, container and instance roles).
   */
  private static AwsCredentialsProvider credentials(BackendOptions options, boolean anonymous) {
    Credentials c = options.credentials();
    if (c != null) {
      return StaticCredentialsProvider.create(AwsBasicCredentials.create(c.username(), c.secret()));
    }
    if (anonymous) {
      return AnonymousCredentialsProvider.create();
    }
    Map<String, String> env = options.environment();
    String id = env.get("AWS_ACCESS_KEY_ID");
    String secret = env.get("AWS_SECRET_ACCESS_KEY");
    if (id != null && !id.isEmpty() && secret != null && !secret.isEmpty()) {
      String session = env.get("AWS_SESSION_TOKEN");
      return StaticCredentialsProvider.create(session != null && !session.isEmpty()
          ? AwsSessionCredentials.create(id, secret, session)
          : AwsBasicCredentials.create(id, secret));
    }
    return DefaultCredentialsProvider.builder().build();
  }

  String key(String hex) {
    return prefix + hex;
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public boolean remote() {
    return true;
  }

  @Override
  public long size(String hex, Call call) throws IOException {
    try {
      return s3().headObject(r -> r.bucket(bucket).key(key(hex))).contentLength();
    } catch (SdkException e) {
      throw failure("size", hex, e);
    }
  }

  @Override
  public int read(String hex, long offset, ByteBuffer dst, Call call) throws IOException {
    long last = offset + dst.remaining() - 1;
    GetObjectRequest req = GetObjectRequest.builder().bucket(bucket).key(key(hex))
        .range("bytes=" + offset + "-" + last).build();
    ResponseInputStream<GetObjectResponse> in;
    try {
      in = s3().getObject(req);
    } catch (AwsServiceException e) {
      if (e.statusCode() == 416) {
        return -1; // InvalidRange: offset at or past the end
      }
      throw failure("read", hex, e);
    } catch (SdkException e) {
      throw failure("read", hex, e);
    }
    call.onAbort(in::abort);
    boolean complete = false;
    try {
      Long length = in.response().contentLength();
      long expected = length != null ? length : dst.remaining();
      int n = Io.readInto(in, dst, expected, call);
      if (n < expected) {
        throw shortRead("read", hex, offset, n, expected);
      }
      complete = true;
      return n;
    } catch (SdkException e) {
      throw failure("read", hex, e);
    } finally {
      closeResponse(in, complete);
    }
  }

  @Override
  public void transferTo(String hex, long offset, long end, WritableByteChannel out, Call call)
      throws IOException {
    GetObjectRequest.Builder req = GetObjectRequest.builder().bucket(bucket).key(key(hex));
    if (end != Long.MAX_VALUE) {
      req.range("bytes=" + offset + "-" + (end - 1));
    } else if (offset > 0) {
      req.range("bytes=" + offset + "-");
    }
    ResponseInputStream<GetObjectResponse> in;
    try {
      in = s3().getObject(req.build());
    } catch (AwsServiceException e) {
      if (e.statusCode() == 416) {
        return; // resumed exactly at the end
      }
      throw failure("transfer", hex, e);
    } catch (SdkException e) {
      throw failure("transfer", hex, e);
    }
    call.onAbort(in::abort);
    boolean complete = false;
    try {
      Long expected = in.response().contentLength();
      if (expected != null && expected > end - offset) {
        throw new BackendException(Kind.PERMANENT, description, "transfer", hex, 0, "asked for "
            + (end - offset) + " bytes from offset " + offset + ", the answer has " + expected
            + " (the Range header was ignored)", null);
      }
      long n = Io.copy(in, out, end - offset, call);
      if (expected != null && n < expected) {
        throw shortRead("transfer", hex, offset, n, expected);
      }
      complete = true;
    } catch (SdkException e) {
      throw failure("transfer", hex, e);
    } finally {
      closeResponse(in, complete);
    }
  }

  @Override
  public void put(String hex, Path file, long size, Call call) throws IOException {
    try {
      if (size <= options.multipartThreshold()) {
        // No x-amz-checksum-sha256: S3-compatible stores (S3Proxy) answer 501 to it.
        s3().putObject(r -> r.bucket(bucket).key(key(hex)).contentLength(size),
            RequestBody.fromContentProvider(() -> Io.fileRange(file, 0, size, call), size,
                "application/octet-stream"));
      } else {
        putMultipart(hex, file, size, call);
      }
    } catch (SdkException e) {
      throw failure("put", hex, e);
    }
  }

  private void putMultipart(String hex, Path file, long size, Call call) {
    String key = key(hex);
    String uploadId = s3().createMultipartUpload(r -> r.bucket(bucket).key(key)).uploadId();
    boolean done = false;
    try {
      List<CompletedPart> parts = new ArrayList<>();
      long partSize = options.partSize();
      int number = 1;
      for (long off = 0; off < size; off += partSize, number++) {
        long from = off;
        long len = Math.min(partSize, size - off);
        int partNumber = number;
        String etag = s3().uploadPart(r -> r.bucket(bucket).key(key).uploadId(uploadId)
                .partNumber(partNumber).contentLength(len),
            RequestBody.fromContentProvider(() -> Io.fileRange(file, from, len, call), len,
                "application/octet-stream")).eTag();
        parts.add(CompletedPart.builder().partNumber(partNumber).eTag(etag).build());
      }
      s3().completeMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(uploadId)
          .multipartUpload(m -> m.parts(parts)));
      log.debug("{}: uploaded sha256:{} in {} parts", description, hex, parts.size());
      done = true;
    } finally {
      if (!done) {
        try {
          s3().abortMultipartUpload(r -> r.bucket(bucket).key(key).uploadId(uploadId));
        } catch (SdkException e) {
          log.debug("{}: could not abort multipart upload of sha256:{}: {}", description, hex,
              e.toString());
        }
      }
    }
  }

  /** A tag is the object PREFIX/refs/NAME:TAG holding a descriptor (docs/containers.md). */
  @Override
  public byte[] getTag(String tag, Call call) throws IOException {
    String op = "tag " + tag;
    ResponseInputStream<GetObjectResponse> in;
    try {
      in = s3().getObject(r -> r.bucket(bucket).key(prefix + "refs/" + tag));
    } catch (SdkException e) {
      throw failure(op, null, e);
    }
    call.onAbort(in::abort);
    boolean complete = false;
    try {
      byte[] bytes = in.readNBytes(MAX_TAG_SIZE + 1);
      call.progress();
      if (bytes.length > MAX_TAG_SIZE) {
        throw new BackendException(Kind.PERMANENT, description, op, null, 0,
            "larger than " + MAX_TAG_SIZE + " bytes: not a descriptor", null);
      }
      complete = true;
      return bytes;
    } catch (SdkException e) {
      throw failure(op, null, e);
    } finally {
      closeResponse(in, complete);
    }
  }

  @Override
  public void putTag(String tag, byte[] descriptor, Call call) throws IOException {
    try {
      s3().putObject(r -> r.bucket(bucket).key(prefix + "refs/" + tag)
              .contentLength((long) descriptor.length).contentType("application/json"),
          RequestBody.fromBytes(descriptor));
    } catch (SdkException e) {
      throw failure("put tag " + tag, null, e);
    }
  }

  @Override
  public synchronized void close() {
    closed = true;
    if (client != null) {
      client.close();
    }
  }

  /** Closes a response: politely when it was read to the end (the connection is reused). */
  private static void closeResponse(ResponseInputStream<?> in, boolean complete) {
    if (!complete) {
      in.abort();
    }
    try {
      in.close();
    } catch (IOException | RuntimeException ignored) {
      // Nothing more to read or to reuse.
    }
  }

  private BackendException shortRead(String op, String hex, long offset, long got, long expected) {
    return new BackendException(Kind.TRANSIENT, description, op, hex, 0, "response ended after "
        + got + " of " + expected + " bytes (from offset " + offset + ")", null);
  }

  /** Maps an SDK failure to a kind; the message keeps S3's error code and text, no secrets. */
  private BackendException failure(String op, String hex, SdkException e) {
    if (e instanceof AwsServiceException se) {
      int status = se.statusCode();
      String code = se.awsErrorDetails() != null ? se.awsErrorDetails().errorCode() : null;
      String text = se.awsErrorDetails() != null ? se.awsErrorDetails().errorMessage() : null;
      Kind kind;
      if (status == 404 && !"NoSuchBucket".equals(code)) {
        kind = Kind.NOT_FOUND;
      } else if (Io.transientStatus(status)) {
        kind = Kind.TRANSIENT;
      } else {
        kind = Kind.PERMANENT;
      }
      StringBuilder detail = new StringBuilder();
      if (code != null && !code.isBlank()) {
        detail.append(code);
      }
      if (text != null && !text.isBlank() && !text.equals(code)) {
        detail.append(detail.length() > 0 ? ": " : "").append(text);
      }
      if (detail.length() == 0) {
        detail.append(kind == Kind.NOT_FOUND ? "not found" : "request failed");
      }
      if (status == 403 || status == 401) {
        detail.append(" (check the credentials for this bucket)");
      }
      return new BackendException(kind, description, op, hex, status, detail.toString(), e);
    }
    // Client side: a network failure (cause is an IOException) is transient; anything else
    // (no credentials found, a bad configuration) will not fix itself.
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof IOException io) {
        return new BackendException(Kind.TRANSIENT, description, op, hex, 0,
            ManagedBackend.describe(io), e);
      }
    }
    if (e instanceof software.amazon.awssdk.core.exception.AbortedException) {
      return new BackendException(Kind.TRANSIENT, description, op, hex, 0, "aborted", e);
    }
    return new BackendException(Kind.PERMANENT, description, op, hex, 0,
        e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage(), e);
  }
}
