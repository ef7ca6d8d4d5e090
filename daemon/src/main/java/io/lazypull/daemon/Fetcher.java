package io.lazypull.daemon;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fills ranges of cache objects from their backends. A blob is cut into units: its pieces when
 * a meta blob gave their digests (data blobs), else the whole blob when it is small (meta
 * blobs), else aligned windows of the fetch size. A missed READ fetches the units it touches,
 * and more when it continues a sequential stream ({@link Readahead}: windows grow up to the
 * fetch size); READs that need a unit already being fetched wait on that fetch; nothing is
 * written before it is verified:
 *
 * <ul>
 *   <li>blobs with piece digests (data blobs named in a meta blob's index): every piece is
 *       checked;
 *   <li>blobs without, up to {@code wholeBlobMax} (meta blobs): fetched whole, checked against
 *       their own name (the sha256), and then searched for piece digests of other blobs;
 *   <li>bigger blobs without piece digests: written unverified, with one warning per blob.
 * </ul>
 *
 * <p>Background prefetch ({@link Prefetcher}) fetches through {@link #prefetch} on its own
 * threads, never on the demand threads, and waits while demand fetches run ({@link
 * #awaitNoDemand}); a READ that needs a unit a prefetch is fetching waits on that fetch like on
 * any other.
 */
final class Fetcher {
  private static final Logger log = LoggerFactory.getLogger(Fetcher.class);
  private static final int PAGE = DaemonConfig.PAGE;
  /** The most of a window held at once: a whole number of pieces (their sizes are powers of two). */
  private static final int STEP = 1 << 20;

  private final DaemonConfig config;
  private final Executor executor;
  private final BufferPool buffers;
  private final PieceCatalog catalog;
  private final BlobIndexReader indexReader;
  private final Path tmpDir;
  private final Metrics metrics;
  private final BackendHealth health;
  private final Set<String> warnedUnverified = ConcurrentHashMap.newKeySet();
  private final AtomicInteger demandFetches = new AtomicInteger();
  private final Object demandIdle = new Object();

  private final PrefetchLists lists; // told every window a READ fetches
  Fetcher(DaemonConfig config, Executor executor, PieceCatalog catalog, BlobIndexReader indexReader,
      Path tmpDir, Metrics metrics, BackendHealth health, PrefetchLists lists) {
    this.config = config;
    this.lists = lists;
    this.executor = executor;
    // As many free buffers of a size as fetches can use at once (the fetch threads and a stream):
    // a buffer dropped from the pool is direct memory that only a GC gives back, and the
    // daemon's small heap is collected rarely; 4 MiB windows from S3 piled up to ~100 MiB so.
    this.buffers = new BufferPool(config.fetchSize(), config.threads() + 2);
    this.catalog = catalog;
    this.indexReader = indexReader;
    this.tmpDir = tmpDir;
    this.metrics = metrics;
    this.health = health;
  }

  /** The future of a background fetch: a READ waiting on one fetches again if it fails. */
  private static final class Background extends CompletableFuture<Void> {}

  /** How {@code obj} is cut: unit size, its piece digests (or null), whether windows adapt. */
  private record Grid(long unit, PieceIndex pieces, long units, int maxUnits) {}

  private Grid grid(CacheObject obj) {
    Optional<PieceIndex> pieces = catalog.get(obj.blob.digest()).filter(p -> p.blobSize() == obj.size);
    long unit;
    if (pieces.isPresent()) {
      unit = pieces.get().pieceSize();
    } else if (obj.size <= config.wholeBlobMax()) {
      unit = roundUp(Math.max(obj.size, 1), PAGE); // one unit: the whole blob
    } else {
      if (warnedUnverified.add(obj.blob.digest())) {
        log.warn("blob {} ({} bytes) has no piece digests (no blob index in any meta blob seen):"
            + " its ranges are written unverified", obj.blob, obj.size);
      }
      unit = config.fetchSize();
    }
    int maxUnits = (int) Math.max(1, config.fetchSize() / unit);
    return new Grid(unit, pieces.orElse(null), (Math.max(obj.size, 1) + unit - 1) / unit, maxUnits);
  }

  /**
   * Makes [start, end) of {@code obj} present in its cache file, for a READ. The future
   * completes when every unit covering the range has been written, or fails with the first
   * fetch error. It is the caller's own: completing it (a deadline) leaves the fetches running.
   * Each fetch holds a reference to {@code obj}, so its anon fd stays open until the fetch
   * ends, also when no READ waits for it any more.
   */
  CompletableFuture<Void> fill(CacheObject obj, long start, long end) {
    Grid g = grid(obj);
    long first = start / g.unit;
    long last = (end - 1) / g.unit + 1;
    Readahead.Window w = g.pieces == null ? new Readahead.Window(first, last)
        : obj.readahead.plan(first, last, g.maxUnits, g.units);
    // The window, not just the READ: the reads its readahead part serves never reach us.
    lists.read(obj, w.from() * g.unit, Math.min(obj.size, w.to() * g.unit));
    return ensure(obj, g, w.from(), w.to(), first, last, executor, true);
  }

  /**
   * Background: fetches the units of [start, end) of {@code obj} that are neither cached nor
   * being fetched, on {@code prefetchExecutor}. The future completes when the fetches this call
   * started end (not those others started).
   */
  CompletableFuture<Void> prefetch(CacheObject obj, long start, long end, Executor prefetchExecutor) {
    Grid g = grid(obj);
    long first = start / g.unit;
    long last = Math.min(g.units, (end - 1) / g.unit + 1);
    return ensure(obj, g, first, last, first, last, prefetchExecutor, false);
  }

  /**
   * Background, for a blob with piece digests: streams it whole from its backend in one
   * transfer (where each ranged request costs a round trip, one stream runs at the speed of a
   * download), verifying and writing it in batches of a step (1 MiB). A batch's pieces
   * count as in flight while it arrives, so READs that need them wait on it rather than fetch
   * them again; batches already cached are not written. Before each batch it waits while
   * demand fetches run (the backend's flow control pauses the transfer) and gives up once
   * {@code keepGoing} says so. It starts at the first piece not cached: a stream that broke
   * off (a daemon restarted) goes on where it stopped rather than download again what it
   * wrote. Returns false if the blob has no piece digests (nothing done).
   */
  boolean stream(CacheObject obj, java.util.function.BooleanSupplier keepGoing) throws IOException {
    Grid g = grid(obj);
    if (g.pieces == null || !obj.acquire()) {
      return false;
    }
    try {
      long hole = obj.fd.seekHole(0);
      long from = hole < 0 ? 0 : hole / g.unit * g.unit; // -1: an empty file, nothing cached
      if (from >= obj.size) {
        return true;
      }
      log.info("prefetch of blob {}: streaming it whole from byte {}", obj.blob, from);
      try (BatchWriter w = new BatchWriter(obj, g, from, keepGoing)) {
        metrics.fetches.increment();
        if (from == 0) {
          obj.blob.source().transferTo(obj.blob.digest(), obj.size, w);
        } else {
          obj.blob.source().transferRange(obj.blob.digest(), from, obj.size - from, w);
        }
        w.flush();
        return true;
      }
    } finally {
      obj.release();
    }
  }

  /** Receives a blob's bytes in order; verifies and writes them a batch at a time. */
  private final class BatchWriter implements java.nio.channels.WritableByteChannel {
    private final CacheObject obj;
    private final Grid g;
    private final java.util.function.BooleanSupplier keepGoing;
    private final ByteBuffer batch;
    private long batchStart;
    private CompletableFuture<Void> claim; // the in-flight entry of the batch's units we took
    private long claimFrom;
    private long claimTo;

    BatchWriter(CacheObject obj, Grid g, long from, java.util.function.BooleanSupplier keepGoing) {
      this.obj = obj;
      this.g = g;
      this.keepGoing = keepGoing;
      // A step, not the largest window: the stream looks for READs between batches, so a READ
      // shares the backend with at most a step of it.
      this.batch = buffers.acquire((int) Math.min(g.maxUnits * g.unit, Math.max(STEP, g.unit)));
      this.batchStart = from;
      batch.clear().limit((int) Math.min(batch.capacity(), obj.size - from));
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = 0;
      while (src.hasRemaining()) {
        if (claim == null) {
          begin();
        }
        int take = Math.min(src.remaining(), batch.remaining());
        ByteBuffer part = src.duplicate();
        part.limit(part.position() + take);
        batch.put(part);
        src.position(src.position() + take);
        n += take;
        if (!batch.hasRemaining()) {
          flush();
        }
      }
      return n;
    }

    /** Before a batch arrives: READs first, then claim its units that are neither cached nor in flight. */
    private void begin() throws IOException {
      try {
        while (!awaitNoDemand(500)) {
          if (!keepGoing.getAsBoolean()) {
            break;
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("prefetch stopped");
      }
      if (!keepGoing.getAsBoolean()) {
        throw new java.io.InterruptedIOException("prefetch of " + obj + " stopped");
      }
      claim = new Background();
      claimFrom = batchStart / g.unit;
      claimTo = Math.min(g.units, (batchStart + batch.limit() + g.unit - 1) / g.unit);
      synchronized (obj.inflight) {
        for (long u = claimFrom; u < claimTo; u++) {
          obj.inflight.putIfAbsent(u, claim);
        }
      }
    }

    /** The batch is complete (or the blob ended): verify, write unless cached, release the claim. */
    void flush() throws IOException {
      if (claim == null) {
        return;
      }
      int len = batch.position();
      try {
        batch.flip();
        metrics.bytesFetched.add(len);
        if (len > 0 && !obj.isCached(batchStart, roundUp(batchStart + len, PAGE))) {
          g.pieces.verify(obj.blob.digest(), batchStart, batch);
          Fetcher.this.write(obj, batchStart, batch, len);
        }
        release(null);
      } catch (IOException | RuntimeException e) {
        release(e);
        throw e;
      } finally {
        batchStart += len;
        batch.clear().limit((int) Math.min(batch.capacity(), obj.size - batchStart));
      }
    }

    /** Drops the batch's in-flight entries, then completes it (READs on a failed one fetch again). */
    private void release(Throwable failure) {
      CompletableFuture<Void> c = claim;
      claim = null;
      synchronized (obj.inflight) {
        for (long u = claimFrom; u < claimTo; u++) {
          obj.inflight.remove(u, c);
        }
      }
      if (failure == null) {
        c.complete(null);
      } else {
        c.completeExceptionally(failure);
      }
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {
      if (claim != null) {
        release(new IOException("the prefetch stream of " + obj + " ended early"));
      }
      buffers.release(batch);
    }
  }

  /** The unit size of {@code obj}'s fetches (prefetch steps are aligned to it). */
  long unitOf(CacheObject obj) {
    return grid(obj).unit;
  }

  /** Waits up to {@code millis} until no demand fetch runs; true if none does. */
  boolean awaitNoDemand(long millis) throws InterruptedException {
    long deadline = System.nanoTime() + millis * 1_000_000;
    synchronized (demandIdle) {
      while (demandFetches.get() > 0) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
          return false;
        }
        demandIdle.wait(left);
      }
      return true;
    }
  }

  /**
   * Units [from, to) present, fetched by runs of at most {@code maxUnits} contiguous units that
   * are neither cached nor in flight. The result waits for the fetches that cover [needFrom,
   * needTo) (demand: also those others started; background: only its own).
   */
  private CompletableFuture<Void> ensure(CacheObject obj, Grid g, long from, long to, long needFrom, long needTo,
      Executor ex, boolean demand) {
    List<CompletableFuture<Void>> parts = new ArrayList<>();
    List<CompletableFuture<Void>> joined = new ArrayList<>();
    long fileEnd = roundUp(obj.size, PAGE);
    synchronized (obj.inflight) {
      long k = from;
      while (k < to) {
        CompletableFuture<Void> f = obj.inflight.get(k);
        if (f != null) {
          if (demand && k < needTo && k >= needFrom && !joined.contains(f)) {
            joined.add(f);
            metrics.mergedReads.increment();
            if (f instanceof Background) {
              // A prefetch that fails (or stops) must not fail the READ: it fetches again.
              long from0 = Math.max(k, needFrom);
              parts.add(f.handle((v, e) -> e == null ? CompletableFuture.<Void>completedFuture(null)
                  : ensure(obj, g, from0, needTo, from0, needTo, executor, true)).thenCompose(x -> x));
            } else {
              parts.add(f);
            }
          }
          k++;
          continue;
        }
        long hole;
        try {
          hole = obj.fd.seekHole(k * g.unit);
        } catch (IOException e) {
          parts.add(CompletableFuture.failedFuture(e));
          break;
        }
        if (hole < 0) {
          hole = k * g.unit; // past the end of a cache file that grows as it is written: not cached
        } else if (hole >= fileEnd) {
          break; // the rest is cached
        }
        if (hole / g.unit > k) {
          k = hole / g.unit; // units [k, hole's unit) are cached
          continue;
        }
        // A run ends where the READ's own units end: the READ waits for its units, not for the
        // window fetched ahead of it (whose READs then arrive while it is in flight and move
        // the stream on).
        long runLimit = k < needTo ? Math.min(to, needTo) : to;
        long runEnd = k + 1;
        while (runEnd < runLimit && runEnd - k < g.maxUnits && !obj.inflight.containsKey(runEnd)) {
          runEnd++;
        }
        try {
          long data = obj.fd.seekData(k * g.unit);
          if (data >= 0 && data / g.unit < runEnd) {
            runEnd = Math.max(k + 1, data / g.unit); // stop before cached units
          }
        } catch (IOException e) {
          log.debug("{}: SEEK_DATA: {}", obj, e.getMessage());
        }
        boolean needed = runEnd > needFrom && k < needTo;
        CompletableFuture<Void> run = startRun(obj, g, k, runEnd, ex, demand, demand && needed);
        if (needed) {
          parts.add(run);
        }
        k = runEnd;
      }
    }
    return parts.size() == 1 ? parts.get(0).thenApply(v -> null)
        : CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]));
  }

  /**
   * Starts fetching units [k, end) of {@code obj}; they count as in flight until written.
   * {@code urgent}: a READ waits for it (background prefetch waits until none runs); windows
   * fetched ahead of a reader are demand fetches too, but nobody waits for them yet. The
   * result completes when the whole run is written.
   */
  private CompletableFuture<Void> startRun(CacheObject obj, Grid g, long k, long end, Executor ex, boolean demand,
      boolean urgent) {
    if (!obj.acquire()) {
      return CompletableFuture.failedFuture(new IOException(obj + " is closed"));
    }
    Run run = new Run(obj, g, k, end, demand);
    if (urgent) {
      demandFetches.incrementAndGet();
    }
    long wStart = k * g.unit;
    long wEnd = Math.min(end * g.unit, obj.size);
    Runnable fetch = () -> {
      Throwable failure = null;
      try {
        fetchWindow(obj, wStart, wEnd, g.pieces, run);
      } catch (Throwable t) {
        failure = t;
      } finally {
        run.leaveTable(); // before a prefetch that waits for no demand looks at these units
        if (urgent && demandFetches.decrementAndGet() == 0) {
          synchronized (demandIdle) {
            demandIdle.notifyAll();
          }
        }
        obj.release();
      }
      run.finish(failure);
    };
    try {
      ex.execute(fetch);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      if (urgent) {
        demandFetches.decrementAndGet();
      }
      obj.release();
      run.finish(new IOException("the daemon is stopping", e));
    }
    return run.whole;
  }

  /**
   * The units of one fetch, in steps that complete as they are written: a READ that finds its
   * units in flight waits for the step that holds them, not for the rest of the window (a
   * window of several MiB streams in from one request, a step at a time).
   */
  private final class Run {
    private final CacheObject obj;
    private final long k;
    private final long end;
    private final long unit;
    private final long stepUnits;
    private final CompletableFuture<Void>[] steps;
    private int done; // steps before this one are complete
    final CompletableFuture<Void> whole;

    @SuppressWarnings("unchecked")
    Run(CacheObject obj, Grid g, long k, long end, boolean demand) {
      this.obj = obj;
      this.k = k;
      this.end = end;
      this.unit = g.unit;
      // fetchRange's step; without piece digests a window is verified (written) in one go
      this.stepUnits = g.pieces == null ? end - k : Math.max(1, Math.max(STEP, g.unit) / g.unit);
      this.steps = new CompletableFuture[(int) ((end - k + stepUnits - 1) / stepUnits)];
      for (int i = 0; i < steps.length; i++) {
        steps[i] = demand ? new CompletableFuture<>() : new Background();
      }
      synchronized (obj.inflight) {
        for (long u = k; u < end; u++) {
          obj.inflight.put(u, steps[(int) ((u - k) / stepUnits)]);
        }
      }
      whole = steps.length == 1 ? steps[0] : CompletableFuture.allOf(steps);
    }

    /** The bytes of the run before {@code upTo} are written: completes the steps they hold. */
    void written(long upTo) {
      int to = done;
      while (to < steps.length && Math.min(obj.size, stepEnd(to) * unit) <= upTo) {
        to++;
      }
      complete(to, null);
    }

    /** The fetch ended: its units no longer count as in flight (its futures complete after). */
    void leaveTable() {
      int from;
      synchronized (this) {
        from = done;
      }
      removeFromTable(from, steps.length);
    }

    /** The fetch ended: every step not yet complete completes, failed if {@code failure}. */
    void finish(Throwable failure) {
      complete(steps.length, failure);
    }

    private void removeFromTable(int from, int to) {
      synchronized (obj.inflight) {
        for (int i = from; i < to; i++) {
          for (long u = k + i * stepUnits; u < stepEnd(i); u++) {
            obj.inflight.remove(u, steps[i]);
          }
        }
      }
    }

    private long stepEnd(int i) {
      return Math.min(end, k + (i + 1) * stepUnits);
    }

    private void complete(int to, Throwable failure) {
      int from;
      synchronized (this) {
        from = done;
        done = Math.max(done, to);
      }
      if (from >= to) {
        return;
      }
      // Out of the table before completing: what a completion starts (a READ fetching again
      // after a failed prefetch) must not find these units still in flight.
      removeFromTable(from, to);
      for (int i = from; i < to; i++) {
        if (failure == null) {
          steps[i].complete(null);
        } else {
          steps[i].completeExceptionally(failure);
        }
      }
    }
  }

  private void fetchWindow(CacheObject obj, long wStart, long wEnd, PieceIndex pieces, Run run) {
    try {
      if (obj.isCached(wStart, roundUp(wEnd, PAGE))) {
        return; // another fetch (or a previous daemon) already wrote it
      }
      if (pieces == null && wStart == 0 && wEnd == obj.size && obj.size <= config.wholeBlobMax()) {
        fetchWholeBlob(obj);
      } else {
        fetchRange(obj, wStart, wEnd, pieces, run);
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /**
   * Fetches [wStart, wEnd), verifies it against {@code pieces} (when known) and writes it. A
   * window bigger than {@link #STEP} passes through one buffer of that size, each step's pieces
   * verified and written as they arrive: from a remote backend in one request, else a request
   * per step. (A buffer per window held 4 MiB of direct memory per fetch in flight.)
   */
  private void fetchRange(CacheObject obj, long wStart, long wEnd, PieceIndex pieces, Run run) throws IOException {
    int len = (int) (wEnd - wStart);
    int step = pieces == null ? len : (int) Math.min(len, Math.max(STEP, pieces.pieceSize()));
    ByteBuffer buf = buffers.acquire(roundUp(step, PAGE));
    try {
      metrics.fetches.increment();
      if (step == len || !obj.blob.source().remote()) {
        for (long off = wStart; off < wEnd; off += step) {
          int n = (int) Math.min(step, wEnd - off);
          buf.clear().limit(n);
          long at = off;
          request(obj, off, n, null, source -> source.readFully(obj.blob.digest(), at, buf));
          buf.flip();
          verifyAndWrite(obj, off, buf, n, pieces);
          run.written(off + n);
        }
      } else {
        PieceWriter w = new PieceWriter(obj, wStart, wEnd, buf, step, pieces, run);
        request(obj, wStart, len, w, source -> source.transferRange(obj.blob.digest(), wStart, len, w));
        if (w.pos != wEnd) {
          throw new IOException("backend sent " + (w.pos - wStart) + " of " + len + " bytes for ["
              + wStart + ", " + wEnd + ") of " + obj.blob);
        }
      }
    } finally {
      buffers.release(buf);
    }
  }

  /** {@code len} fetched bytes at {@code off}: counted, checked against their pieces, written. */
  private void verifyAndWrite(CacheObject obj, long off, ByteBuffer buf, int len, PieceIndex pieces)
      throws IOException {
    metrics.bytesFetched.add(len);
    if (pieces != null) {
      try {
        pieces.verify(obj.blob.digest(), off, buf);
      } catch (PieceIndex.IntegrityException e) {
        metrics.integrityFailures.increment();
        throw e;
      }
    }
    write(obj, off, buf, len);
  }

  /**
   * Receives a window's bytes in order into a buffer of one step; each full step (or the
   * window's end) is verified and written before more is taken. What it throws is the cache's
   * or the bytes' fault, not the backend's answering.
   */
  private final class PieceWriter implements java.nio.channels.WritableByteChannel {
    private final CacheObject obj;
    private final long end;
    private final ByteBuffer buf;
    private final int step;
    private final PieceIndex pieces;
    private final Run run;
    long pos; // where the bytes in buf begin
    IOException failure;

    PieceWriter(CacheObject obj, long start, long end, ByteBuffer buf, int step, PieceIndex pieces, Run run) {
      this.obj = obj;
      this.run = run;
      this.end = end;
      this.buf = buf;
      this.step = step;
      this.pieces = pieces;
      this.pos = start;
      buf.clear().limit((int) Math.min(step, end - pos));
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = 0;
      while (src.hasRemaining() && buf.hasRemaining()) {
        int take = Math.min(src.remaining(), buf.remaining());
        buf.put(buf.position(), src, src.position(), take);
        buf.position(buf.position() + take);
        src.position(src.position() + take);
        n += take;
        if (!buf.hasRemaining()) {
          int len = buf.position();
          buf.flip();
          try {
            verifyAndWrite(obj, pos, buf, len, pieces);
          } catch (IOException e) {
            failure = e;
            throw e;
          }
          pos += len;
          run.written(pos);
          buf.clear().limit((int) Math.min(step, end - pos));
        }
      }
      if (src.hasRemaining()) {
        failure = new IOException("backend sent more than the " + (end - pos) + " bytes asked for");
        throw failure;
      }
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
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
      // No bigger than the blob: a meta blob of a few hundred KiB held (and kept in the pool) a
      // buffer of the largest window, zeroed and so resident.
      int part = (int) Math.min(config.fetchSize(), roundUp(Math.max(obj.size, 1), PAGE));
      ByteBuffer buf = buffers.acquire(part);
      try {
        for (long off = 0; off < obj.size; ) {
          int len = (int) Math.min(part, obj.size - off);
          buf.clear().limit(len);
          metrics.fetches.increment();
          long at = off;
          request(obj, off, len, null, source -> source.readFully(digest, at, buf));
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
          int len = (int) Math.min(part, obj.size - off);
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

  /** What one backend request does with the blob's source. */
  private interface Request {
    void run(BlobSource source) throws IOException;
  }

  /**
   * One backend request for {@code bytes} at {@code offset}; whether the backend answered it
   * goes to its circuit breaker (not a failure of the {@link PieceWriter} it writes into).
   */
  private void request(CacheObject obj, long offset, long bytes, PieceWriter sink, Request request)
      throws IOException {
    BlobSource source = obj.blob.source();
    BackendMetrics m = metrics.backend(source);
    m.requests.increment();
    long t0 = System.nanoTime();
    try {
      request.run(source);
    } catch (IOException e) {
      if (sink != null && e == sink.failure) {
        throw e;
      }
      m.errors.increment();
      health.failed(source, e, probe(obj.blob, obj.size, offset));
      throw e;
    }
    m.observe(System.nanoTime() - t0);
    m.bytes.add(bytes);
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
