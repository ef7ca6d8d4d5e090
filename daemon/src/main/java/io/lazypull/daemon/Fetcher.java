package io.lazypull.daemon;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fills ranges of cache objects from their backends. A READ is widened to aligned windows of
 * the fetch size (so one fetch serves the many small reads that follow it), READs that need the
 * same window of the same object wait on one fetch, and nothing is written before it is
 * verified:
 *
 * <ul>
 *   <li>blobs with piece digests (data blobs named in a meta blob's index): windows are aligned
 *       to pieces and every piece is checked;
 *   <li>blobs without, up to {@code wholeBlobMax} (meta blobs): fetched whole, checked against
 *       their own name (the sha256), and then searched for piece digests of other blobs;
 *   <li>bigger blobs without piece digests: written unverified, with one warning per blob.
 * </ul>
 */
final class Fetcher {
  private static final Logger log = LoggerFactory.getLogger(Fetcher.class);
  private static final int PAGE = DaemonConfig.PAGE;

  private final DaemonConfig config;
  private final Executor executor;
  private final BufferPool buffers;
  private final PieceCatalog catalog;
  private final BlobIndexReader indexReader;
  private final Path tmpDir;
  private final Metrics metrics;
  private final BackendHealth health;
  private final Set<String> warnedUnverified = ConcurrentHashMap.newKeySet();

  Fetcher(DaemonConfig config, Executor executor, PieceCatalog catalog, BlobIndexReader indexReader,
      Path tmpDir, Metrics metrics, BackendHealth health) {
    this.config = config;
    this.executor = executor;
    this.buffers = new BufferPool(config.fetchSize(), config.threads());
    this.catalog = catalog;
    this.indexReader = indexReader;
    this.tmpDir = tmpDir;
    this.metrics = metrics;
    this.health = health;
  }

  /**
   * Makes [start, end) of {@code obj} present in its cache file. The future completes when
   * every window covering the range has been written, or fails with the first fetch error. It
   * is the caller's own: completing it (a deadline) leaves the fetches running. Each window's
   * fetch holds a reference to {@code obj}, so its anon fd stays open until the fetch ends,
   * also when no READ waits for it any more.
   */
  CompletableFuture<Void> fill(CacheObject obj, long start, long end) {
    Optional<PieceIndex> pieces = catalog.get(obj.blob.digest())
        .filter(p -> p.blobSize() == obj.size);
    long window;
    if (pieces.isPresent()) {
      int p = pieces.get().pieceSize();
      window = Math.max(p, (long) config.fetchSize() / p * p);
    } else if (obj.size <= config.wholeBlobMax()) {
      window = roundUp(Math.max(obj.size, 1), PAGE); // one window: the whole blob
    } else {
      if (warnedUnverified.add(obj.blob.digest())) {
        log.warn("blob {} ({} bytes) has no piece digests (no blob index in any meta blob seen):"
            + " its ranges are written unverified", obj.blob, obj.size);
      }
      window = config.fetchSize();
    }
    long first = start / window;
    long last = (end - 1) / window;
    CompletableFuture<?>[] parts = new CompletableFuture<?>[(int) (last - first + 1)];
    for (long k = first; k <= last; k++) {
      long wStart = k * window;
      long wEnd = Math.min(wStart + window, obj.size);
      boolean[] started = {false};
      CompletableFuture<Void> f = obj.windows.computeIfAbsent(wStart, s -> {
        if (!obj.acquire()) {
          return CompletableFuture.failedFuture(new IOException(obj + " is closed"));
        }
        started[0] = true;
        return CompletableFuture.runAsync(() -> fetchWindow(obj, wStart, wEnd, pieces.orElse(null)), executor);
      });
      if (started[0]) {
        f.whenComplete((v, e) -> {
          obj.windows.remove(wStart, f);
          obj.release();
        });
      } else {
        metrics.mergedReads.increment();
      }
      parts[(int) (k - first)] = f;
    }
    return CompletableFuture.allOf(parts);
  }

  private void fetchWindow(CacheObject obj, long wStart, long wEnd, PieceIndex pieces) {
    try {
      if (obj.isCached(wStart, roundUp(wEnd, PAGE))) {
        return; // another fetch (or a previous daemon) already wrote it
      }
      if (pieces == null && wStart == 0 && wEnd == obj.size && obj.size <= config.wholeBlobMax()) {
        fetchWholeBlob(obj);
      } else {
        fetchRange(obj, wStart, wEnd, pieces);
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private void fetchRange(CacheObject obj, long wStart, long wEnd, PieceIndex pieces) throws IOException {
    int len = (int) (wEnd - wStart);
    ByteBuffer buf = buffers.acquire(roundUp(len, PAGE));
    try {
      buf.limit(len);
      metrics.fetches.increment();
      readFromBackend(obj, wStart, buf);
      metrics.bytesFetched.add(len);
      buf.flip();
      if (pieces != null) {
        try {
          pieces.verify(obj.blob.digest(), wStart, buf);
        } catch (PieceIndex.IntegrityException e) {
          metrics.integrityFailures.increment();
          throw e;
        }
      }
      write(obj, wStart, buf, len);
    } finally {
      buffers.release(buf);
    }
  }

  /**
   * A small blob: fetched in fetch-size parts into a private temp file while hashing, checked
   * against its name, searched for piece digests, and only then copied into the cache file.
   */
  private void fetchWholeBlob(CacheObject obj) throws IOException {
    String digest = obj.blob.digest();
    Path tmp = Files.createTempFile(tmpDir, digest, ".part");
    try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      MessageDigest sha = PieceIndex.sha256();
      ByteBuffer buf = buffers.acquire(config.fetchSize());
      try {
        for (long off = 0; off < obj.size; ) {
          int len = (int) Math.min(config.fetchSize(), obj.size - off);
          buf.clear().limit(len);
          metrics.fetches.increment();
          readFromBackend(obj, off, buf);
          metrics.bytesFetched.add(len);
          buf.flip();
          sha.update(buf.duplicate());
          while (buf.hasRemaining()) {
            ch.write(buf, off + buf.position());
          }
          off += len;
        }
        String got = HexFormat.of().formatHex(sha.digest());
        if (!got.equals(digest)) {
          metrics.integrityFailures.increment();
          throw new PieceIndex.IntegrityException("sha256 mismatch for blob " + obj.blob + ": got " + got);
        }
        learnPieces(obj, tmp);
        for (long off = 0; off < obj.size; ) {
          int len = (int) Math.min(config.fetchSize(), obj.size - off);
          buf.clear().limit(len);
          while (buf.hasRemaining()) {
            if (ch.read(buf, off + buf.position()) < 0) {
              throw new IOException("temp file " + tmp + " shrank");
            }
          }
          buf.flip();
          write(obj, off, buf, len);
          off += len;
        }
      } finally {
        buffers.release(buf);
      }
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** One backend request; whether the backend answered it goes to its circuit breaker. */
  private void readFromBackend(CacheObject obj, long offset, ByteBuffer buf) throws IOException {
    BlobSource source = obj.blob.source();
    BackendMetrics m = metrics.backend(source);
    m.requests.increment();
    long t0 = System.nanoTime();
    int before = buf.position();
    try {
      source.readFully(obj.blob.digest(), offset, buf);
    } catch (IOException e) {
      m.errors.increment();
      health.failed(source, e, probe(obj.blob, obj.size, offset));
      throw e;
    }
    m.observe(System.nanoTime() - t0);
    m.bytes.add(buf.position() - before);
    health.answered(source);
  }

  /** What a probe of {@code blob}'s backend asks: the page at {@code offset}. */
  static CircuitBreaker.Probe probe(Domains.BlobRef blob, long size, long offset) {
    int len = (int) Math.max(1, Math.min(PAGE, size - offset));
    return () -> blob.source().readFully(blob.digest(), offset, ByteBuffer.allocate(len));
  }

  private void learnPieces(CacheObject obj, Path verifiedBlob) {
    try {
      Map<String, PieceIndex> found = indexReader.read(verifiedBlob);
      for (Map.Entry<String, PieceIndex> e : found.entrySet()) {
        catalog.put(e.getKey(), e.getValue());
      }
      if (!found.isEmpty()) {
        log.info("{}: blob index with piece digests for {} data blob(s)", obj.blob, found.size());
      }
    } catch (IOException | RuntimeException e) {
      // Not every small blob is a meta blob with an index; an unreadable one just teaches nothing.
      log.debug("{}: no blob index: {}", obj.blob, e.toString());
    }
  }

  /** Writes {@code len} bytes from {@code buf}, zero-padded to whole pages, at {@code off}. */
  private void write(CacheObject obj, long off, ByteBuffer buf, int len) throws IOException {
    CrashPoints.maybeCrash(CrashPoints.Point.FETCH);
    int padded = roundUp(len, PAGE);
    buf.limit(padded);
    for (int i = len; i < padded; i++) {
      buf.put(i, (byte) 0);
    }
    buf.position(0);
    obj.fd.write(off, buf);
    metrics.bytesWritten.add(padded);
  }

  static int roundUp(int v, int to) {
    return (v + to - 1) / to * to;
  }

  static long roundUp(long v, long to) {
    return (v + to - 1) / to * to;
  }
}
