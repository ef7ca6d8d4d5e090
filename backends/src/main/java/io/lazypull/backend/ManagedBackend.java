package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.BackendException.Kind;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * The one place where fetch behaviour lives; every store (local, S3, registry) is wrapped in
 * it by Backends.open.
 *
 *   caller -> ManagedBackend.read
 *               normalize digest, size cache (past-the-end reads answer -1 without a request)
 *               run(op):  loop                         (all of it within operationTimeout, if set)
 *                 acquire a permit (maxConcurrentRequests)
 *                 watchdog.begin -> Call                  (aborted: no progress, or past the deadline)
 *                 store.read(hex, offset + bytes already placed, dst, call)   <- one attempt
 *                 release; on TRANSIENT: sleep full-jitter backoff, try again (resuming)
 *               count bytes
 *
 * Transfers of whole blobs run through a channel that hashes what passes, so the blob is
 * checked against its own name once it has all been written, and a retry resumes where the
 * failed attempt stopped.
 */

/** Retries, timeouts, the concurrency bound, counters and verification around a {@link Store}. */
final class ManagedBackend implements BlobBackend {
  private static final Logger log = LoggerFactory.getLogger(ManagedBackend.class);
  private static final int SIZE_CACHE_MAX = 4096;

  private final Store store;
  private final BackendOptions options;
  private final Semaphore permits;
  private final Watchdog watchdog; // null for stores that cannot hang
  // Sizes of blobs seen; blobs are immutable, so a size never goes stale.
  private final ConcurrentHashMap<String, Long> sizes = new ConcurrentHashMap<>();

  private final LongAdder requests = new LongAdder();
  private final LongAdder retries = new LongAdder();
  private final LongAdder errors = new LongAdder();
  private final LongAdder timeouts = new LongAdder();
  private final LongAdder bytesRead = new LongAdder();
  private final LongAdder bytesWritten = new LongAdder();

  @FunctionalInterface
  interface Attempt<T> {
    T run(Call call) throws IOException;
  }

  ManagedBackend(Store store, BackendOptions options) {
    this.store = store;
    this.options = options;
    this.permits = new Semaphore(options.maxConcurrentRequests());
    this.watchdog = store.remote() ? new Watchdog(options.readTimeout(), store.describe()) : null;
  }

  @Override
  public String describe() {
    return store.describe();
  }

  @Override
  public long size(String digest) throws IOException {
    String hex = Digests.normalize(digest);
    Long known = sizes.get(hex);
    if (known != null) {
      return known;
    }
    long size = run("size", hex, call -> store.size(hex, call));
    remember(hex, size);
    return size;
  }

  @Override
  public int read(String digest, long offset, ByteBuffer dst) throws IOException {
    String hex = Digests.normalize(digest);
    if (offset < 0) {
      throw new IllegalArgumentException("negative offset " + offset + " in sha256:" + hex);
    }
    if (!dst.hasRemaining()) {
      return 0;
    }
    Long known = sizes.get(hex);
    if (known != null && offset >= known) {
      return -1;
    }
    int start = dst.position();
    String op = "read [" + offset + "," + (offset + dst.remaining()) + ")";
    int n = run(op, hex, call -> {
      int placed = dst.position() - start; // bytes a failed attempt left; resume after them
      int r = store.read(hex, offset + placed, dst, call);
      int total = dst.position() - start;
      return r < 0 && total == 0 ? -1 : total;
    });
    if (n > 0) {
      bytesRead.add(n);
    }
    return n;
  }

  @Override
  public int read(String digest, long offset, ByteBuffer dst, String expectedSha256)
      throws IOException {
    try {
      return BlobBackend.super.read(digest, offset, dst, expectedSha256);
    } catch (BackendException e) {
      if (e.kind() == Kind.PERMANENT) {
        errors.increment();
      }
      throw e;
    }
  }

  @Override
  public void transferRange(String digest, long offset, long length, WritableByteChannel target)
      throws IOException {
    String hex = Digests.normalize(digest);
    if (offset < 0 || length < 0) {
      throw new IllegalArgumentException("negative range [" + offset + ", +" + length + ") in sha256:" + hex);
    }
    long end = offset + length;
    String op = "read [" + offset + "," + end + ")";
    CountingChannel out = new CountingChannel(target);
    while (out.count < length) {
      long before = out.count;
      run(op, hex, call -> {
        store.transferTo(hex, offset + out.count, end, out, call);
        return null;
      });
      if (out.count == before) {
        errors.increment();
        throw new BackendException(Kind.PERMANENT, describe(), op, hex, 0, "the blob ends at "
            + (offset + out.count) + ", " + (length - out.count) + " bytes short", null);
      }
    }
  }

  @Override
  public boolean remote() {
    return store.remote();
  }

  @Override
  public void connect() throws IOException {
    store.connect();
  }

  @Override
  public long transferTo(String digest, WritableByteChannel target) throws IOException {
    String hex = Digests.normalize(digest);
    HashingChannel out = new HashingChannel(target);
    run("transfer", hex, call -> {
      store.transferTo(hex, out.count, Long.MAX_VALUE, out, call);
      return null;
    });
    String actual = Digests.hex(out.md);
    if (!actual.equals(hex)) {
      errors.increment();
      throw Verification.mismatch(describe(), "transfer", hex, 0, out.count, hex, actual);
    }
    remember(hex, out.count);
    return out.count;
  }

  @Override
  public String put(Path file) throws IOException {
    long size = Files.size(file);
    String hex = Digests.sha256Hex(file);
    long existing = -1;
    try {
      existing = size(hex);
    } catch (BackendException e) {
      if (!e.isNotFound()) {
        throw e;
      }
    }
    if (existing == size) {
      log.debug("{}: sha256:{} is already there ({} bytes)", describe(), hex, size);
      return hex;
    }
    if (existing >= 0) {
      log.warn("{}: sha256:{} is there with {} bytes instead of {}: uploading it again",
          describe(), hex, existing, size);
      sizes.remove(hex);
    }
    run("put", hex, call -> {
      store.put(hex, file, size, call);
      return null;
    });
    bytesWritten.add(size);
    remember(hex, size);
    return hex;
  }

  /*
   * Manifests. A registry has its own API; everywhere else a manifest is a blob (its exact
   * bytes under its digest) and a tag is a small object holding the OCI descriptor it points at
   * (S3 and directories: refs/NAME:TAG; an OCI layout: an index.json entry). Either way the
   * bytes returned hash to the digest asked for, or to the one the tag's descriptor names.
   */

  @Override
  public Manifest manifest(String reference) throws IOException {
    boolean byDigest = reference.startsWith(Digests.SHA256_PREFIX);
    String hex = byDigest ? Digests.normalize(reference) : null;
    Manifest m;
    if (store.hasManifestApi()) {
      m = run("manifest " + reference, null, call -> store.getManifest(reference, call));
    } else if (byDigest) {
      m = blobManifest(hex, null, -1);
    } else {
      String tag = checkTag(reference);
      byte[] descriptor = run("tag " + tag, null, call -> store.getTag(tag, call));
      JsonNode d;
      try {
        d = Json.MAPPER.readTree(descriptor);
      } catch (IOException e) {
        d = null;
      }
      if (d == null || !d.path("digest").isTextual() || !d.path("size").canConvertToLong()) {
        throw new BackendException(Kind.PERMANENT, describe(), "tag " + tag, null, 0,
            "the tag holds no OCI descriptor (digest, size)", null);
      }
      String mediaType = d.path("mediaType").asText("");
      String target;
      try {
        target = Digests.normalize(d.path("digest").asText());
      } catch (IllegalArgumentException e) {
        throw new BackendException(Kind.PERMANENT, describe(), "tag " + tag, null, 0,
            e.getMessage(), null);
      }
      m = blobManifest(target, mediaType.isEmpty() ? null : mediaType, d.path("size").asLong());
    }
    if (byDigest && !m.digest().equals(Digests.SHA256_PREFIX + hex)) {
      errors.increment();
      throw new BackendException(Kind.PERMANENT, describe(), "manifest", hex, 0,
          "the bytes received have " + m.digest(), null);
    }
    return m;
  }

  /** A manifest stored as a blob, read whole and checked against its name (and size, if known). */
  private Manifest blobManifest(String hex, String mediaType, long expectedSize) throws IOException {
    long size = size(hex);
    if (expectedSize >= 0 && size != expectedSize) {
      throw new BackendException(Kind.PERMANENT, describe(), "manifest", hex, 0,
          "the blob has " + size + " bytes, its descriptor says " + expectedSize, null);
    }
    if (size > Manifest.MAX_SIZE) {
      throw new BackendException(Kind.PERMANENT, describe(), "manifest", hex, 0,
          "manifest of " + size + " bytes is larger than " + Manifest.MAX_SIZE, null);
    }
    ByteBuffer buf = ByteBuffer.allocate((int) size);
    while (buf.hasRemaining() && read(hex, buf.position(), buf) > 0) {
      // read() is short only at the end of the blob
    }
    if (buf.hasRemaining()) {
      throw new BackendException(Kind.TRANSIENT, describe(), "manifest", hex, 0,
          "the blob ended after " + buf.position() + " of " + size + " bytes", null);
    }
    byte[] bytes = buf.array();
    String actual = Digests.sha256Hex(ByteBuffer.wrap(bytes));
    if (!actual.equals(hex)) {
      errors.increment();
      throw Verification.mismatch(describe(), "manifest", hex, 0, size, hex, actual);
    }
    Manifest m = new Manifest(mediaType != null ? mediaType : "application/json", bytes);
    if (mediaType == null) {
      String sniffed = Manifest.sniff(m.json(describe()));
      if (sniffed == null) {
        throw new BackendException(Kind.PERMANENT, describe(), "manifest", hex, 0,
            "the blob is JSON but not a manifest or index (no mediaType, config or manifests)",
            null);
      }
      m = new Manifest(sniffed, bytes);
    }
    return m;
  }

  @Override
  public void putManifest(String reference, Manifest manifest) throws IOException {
    boolean byDigest = reference.startsWith(Digests.SHA256_PREFIX);
    if (byDigest && !Digests.normalize(reference).equals(Digests.normalize(manifest.digest()))) {
      throw new IllegalArgumentException("manifest " + manifest.digest() + " put as " + reference);
    }
    if (store.hasManifestApi()) {
      run("put manifest " + reference, null, call -> {
        store.putManifest(reference, manifest, call);
        return null;
      });
      bytesWritten.add(manifest.size());
      return;
    }
    String tag = byDigest ? null : checkTag(reference);
    Path tmp = Files.createTempFile("lazypull-manifest-", ".json");
    try {
      Files.write(tmp, manifest.bytes());
      put(tmp);
    } finally {
      Files.deleteIfExists(tmp);
    }
    if (tag != null) {
      ObjectNode d = Json.MAPPER.createObjectNode();
      d.put("mediaType", manifest.mediaType());
      d.put("digest", manifest.digest());
      d.put("size", manifest.size());
      byte[] descriptor = Json.MAPPER.writeValueAsBytes(d);
      run("put tag " + tag, null, call -> {
        store.putTag(tag, descriptor, call);
        return null;
      });
      bytesWritten.add(descriptor.length);
    }
  }

  /**
   * Tags of stores without a manifests API: NAME:TAG (a repository name and a tag, as in a
   * registry); an OCI layout takes its ref names as they are.
   */
  private String checkTag(String tag) {
    if (store instanceof LocalStore l && l.layout() == LocalStore.Layout.OCI_LAYOUT) {
      if (tag.isEmpty()) {
        throw new IllegalArgumentException("empty ref name");
      }
      return tag;
    }
    int colon = tag.lastIndexOf(':');
    if (colon < 0 || !RegistryStore.REPOSITORY.matcher(tag.substring(0, colon)).matches()
        || !RegistryStore.TAG.matcher(tag.substring(colon + 1)).matches()) {
      throw new IllegalArgumentException("not NAME:TAG or sha256:<hex>: '" + tag
          + "' (NAME as a registry repository, e.g. library/busybox:1.36)");
    }
    return tag;
  }

  @Override
  public BackendStats stats() {
    return new BackendStats(requests.sum(), retries.sum(), errors.sum(), timeouts.sum(),
        bytesRead.sum(), bytesWritten.sum());
  }

  @Override
  public void close() throws IOException {
    try {
      store.close();
    } finally {
      if (watchdog != null) {
        watchdog.close();
      }
    }
  }

  @Override
  public String toString() {
    return "BlobBackend[" + describe() + "]";
  }

  private void remember(String hex, long size) {
    if (sizes.size() >= SIZE_CACHE_MAX) {
      sizes.clear();
    }
    sizes.put(hex, size);
  }

  /**
   * Runs attempts until one succeeds, fails for good, or the retries (or the operation
   * timeout, if any) are used up.
   */
  private <T> T run(String op, String hex, Attempt<T> attempt) throws IOException {
    Duration budget = options.operationTimeout();
    long deadline = budget == null ? 0 : System.nanoTime() + budget.toNanos();
    for (int retry = 0; ; retry++) {
      BackendException failure;
      acquirePermit(op, hex, budget == null ? Long.MAX_VALUE : deadline - System.nanoTime());
      Call call = watchdog == null ? new Call()
          : watchdog.begin(budget == null ? Long.MAX_VALUE : deadline - System.nanoTime());
      try {
        requests.increment();
        return attempt.run(call);
      } catch (BackendException e) {
        failure = call.timedOut() && e.kind() != Kind.NOT_FOUND ? timedOut(op, hex, call, e) : e;
      } catch (SinkFailure e) {
        throw e.getCause(); // the caller's channel failed: not the backend's fault, not retried
      } catch (IOException e) {
        if (Thread.currentThread().isInterrupted()) {
          throw e;
        }
        failure = call.timedOut() ? timedOut(op, hex, call, e)
            : new BackendException(Kind.TRANSIENT, describe(), op, hex, 0, describe(e), e);
      } finally {
        call.finish();
        permits.release();
      }
      Duration pause = failure.kind() == Kind.TRANSIENT && retry < options.maxRetries() ? backoff(retry) : null;
      boolean outOfTime = pause != null && budget != null && System.nanoTime() + pause.toNanos() >= deadline;
      if (pause == null || outOfTime) {
        if (failure.kind() != Kind.NOT_FOUND) {
          errors.increment();
        }
        if (failure.kind() == Kind.TRANSIENT && (retry > 0 || outOfTime)) {
          throw new BackendException(Kind.TRANSIENT, failure.backend(), failure.operation(),
              failure.digest(), failure.status(), failure.detail() + " (gave up after "
                  + retry + (retry == 1 ? " retry" : " retries")
                  + (outOfTime ? ": operation timeout " + budget.toMillis() + " ms)" : ")"), failure);
        }
        throw failure;
      }
      retries.increment();
      log.debug("{} (retry {}/{} in {} ms)", failure.getMessage(), retry + 1,
          options.maxRetries(), pause.toMillis());
      try {
        options.sleeper().sleep(pause);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw interrupted(op, hex);
      }
    }
  }

  /** Full jitter: uniform in [0, min(max, base * 2^retry)], or the bound itself without jitter. */
  Duration backoff(int retry) {
    long base = options.backoffBase().toNanos();
    long max = options.backoffMax().toNanos();
    long bound = retry < 62 && base <= (max >> retry) ? base << retry : max;
    long nanos = options.jitter() ? ThreadLocalRandom.current().nextLong(bound + 1) : bound;
    return Duration.ofNanos(nanos);
  }

  /** Waits for a request slot, at most {@code leftNanos} (then a TRANSIENT failure). */
  private void acquirePermit(String op, String hex, long leftNanos) throws IOException {
    try {
      if (leftNanos == Long.MAX_VALUE) {
        permits.acquire();
      } else if (!permits.tryAcquire(Math.max(0, leftNanos), TimeUnit.NANOSECONDS)) {
        errors.increment();
        timeouts.increment();
        throw new BackendException(Kind.TRANSIENT, describe(), op, hex, 0, "all "
            + options.maxConcurrentRequests() + " request slots stayed busy until the operation timeout ("
            + options.operationTimeout().toMillis() + " ms)", null);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting for a request slot of "
          + describe());
    }
  }

  private InterruptedIOException interrupted(String op, String hex) {
    return new InterruptedIOException(describe() + ": " + op
        + (hex == null ? "" : " sha256:" + hex) + ": interrupted");
  }

  private BackendException timedOut(String op, String hex, Call call, IOException cause) {
    timeouts.increment();
    return new BackendException(Kind.TRANSIENT, describe(), op, hex, 0, call.pastDeadline()
        ? "no answer within the operation timeout (" + options.operationTimeout().toMillis() + " ms)"
        : "no progress for " + options.readTimeout().toMillis() + " ms (read timeout)", cause);
  }

  /** An I/O failure in a few words: "ConnectException: Connection refused". */
  static String describe(Throwable e) {
    String msg = e.getMessage();
    String type = e.getClass().getSimpleName();
    return msg == null || msg.isBlank() ? type : type + ": " + msg;
  }

  /** A write to the caller's channel failed; carries that failure through the store. */
  private static final class SinkFailure extends IOException {
    private static final long serialVersionUID = 1L;

    SinkFailure(IOException cause) {
      super(cause);
    }

    @Override
    public synchronized IOException getCause() {
      return (IOException) super.getCause();
    }
  }

  /** Counts what passes, so that a retry resumes after it. */
  private class CountingChannel implements WritableByteChannel {
    private final WritableByteChannel target;
    long count;

    CountingChannel(WritableByteChannel target) {
      this.target = target;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n;
      try {
        n = target.write(src);
      } catch (IOException e) {
        throw new SinkFailure(e);
      }
      count += n;
      bytesRead.add(n);
      return n;
    }

    @Override
    public boolean isOpen() {
      return target.isOpen();
    }

    @Override
    public void close() {
      // The caller owns the target.
    }
  }

  /** Passes bytes to the target, hashing and counting them on the way. */
  private final class HashingChannel extends CountingChannel {
    final MessageDigest md = Digests.newSha256();

    HashingChannel(WritableByteChannel target) {
      super(target);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      ByteBuffer seen = src.duplicate();
      int n = super.write(src);
      seen.limit(seen.position() + n);
      md.update(seen);
      return n;
    }
  }
}
