package io.lazypull.shim.ondemand;

import io.lazypull.protocol.Message;
import io.lazypull.protocol.Opcode;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * The cachefiles on-demand cache, in userspace: the kernel's fs/cachefiles/ondemand.c (Linux
 * 6.10+) with the failover of 6.8, for the fuse-shim. The rules are in
 * docs/design/shim-protocol.md; this class is the only place that keeps them.
 *
 * Who calls what:
 *
 *   FUSE threads        lookup / requestOpen, requestRead, acquire, release, then await()
 *   device server       bind, select (a READ datagram), deliveryFailed, copen, restore,
 *                       cread (a CREAD on an anon socket), anonClosed (its EOF), deviceGone
 *
 * Everything runs under this object's monitor (the kernel's xarray lock plus the objects'
 * spinlocks: one lock is plenty for a userspace shim). Waiters sleep on their request, outside
 * the lock. State changes in few places, each logged at debug level with the object id and
 * msg id, where the kernel has a tracepoint:
 *
 *   CLOSE -> OPEN          copen >= 0
 *   CLOSE -> REOPENING     select() meets a NEW READ of a CLOSE object
 *   REOPENING -> OPEN      copen >= 0 of the re-open
 *   any -> CLOSE           the anon socket of the object's current id closes; a CLOSE is
 *                          delivered; a re-open could not be delivered
 *
 * A request is completed exactly once (PendingRequest.complete is idempotent, and finish()
 * removes it from the table in the same step), so no path can answer it twice.
 *
 * Races the kernel closes by running close() synchronously are the device server's to close:
 * before it handles a device datagram it polls every anon socket, so an fd the daemon closed
 * before writing "restore" or "copen" is seen as closed first, as the kernel's fd_release
 * would have run by then.
 */

/**
 * The shim's cachefiles on-demand cache: objects and their states, the pending request table,
 * msg and object ids, restore, and device generations. No FUSE and no sockets here, so every
 * transition is unit-testable.
 */
public final class OndemandCache {
  /** How the cache asks the device server to send the daemon a wake-up datagram. */
  public interface Waker {
    void wakeDaemon();
  }

  /** msg ids: {@code xa_limit_32b}. */
  static final long MSG_ID_MAX = 0xffff_ffffL;
  /** object ids: {@code XA_LIMIT(1, INT_MAX)}. */
  static final long OBJECT_ID_MAX = Integer.MAX_VALUE;

  /** How long a lookup or a read waits for the daemon by default: see {@link #maxWaitNanos()}. */
  public static final Duration DEFAULT_MAX_WAIT = Duration.ofSeconds(60);

  private static final Logger log = LoggerFactory.getLogger(OndemandCache.class);

  private final CacheStore store;
  private final long maxWaitNanos;
  private final Waker waker;
  private final CyclicIds msgIds;
  private final CyclicIds objectIds;

  /** The pending table, by unsigned msg id. */
  private final TreeMap<Long, PendingRequest> pending = new TreeMap<>();
  /** The msg ids carrying the NEW mark ({@code CACHEFILES_REQ_NEW}). */
  private final TreeSet<Long> newIds = new TreeSet<>();
  /** Where the next cyclic scan of {@link #select} starts (after this id). */
  private long lastDelivered = -1;
  /** Live anon sockets by object id. */
  private final Map<Long, Anon> anons = new HashMap<>();
  /** The current generation's objects. */
  private final Map<List<String>, CacheObject> objects = new HashMap<>();
  private Generation current;
  private int generations;
  private long restores;
  private boolean shutdown;

  public OndemandCache(CacheStore store, Waker waker) {
    this(store, waker, DEFAULT_MAX_WAIT);
  }

  /** @param maxWait see {@link #maxWaitNanos()} */
  public OndemandCache(CacheStore store, Waker waker, Duration maxWait) {
    this(store, waker, MSG_ID_MAX, OBJECT_ID_MAX, maxWait);
  }

  /** With small id spaces, to test wrap-around. */
  OndemandCache(CacheStore store, Waker waker, long msgIdMax, long objectIdMax) {
    this(store, waker, msgIdMax, objectIdMax, DEFAULT_MAX_WAIT);
  }

  private OndemandCache(CacheStore store, Waker waker, long msgIdMax, long objectIdMax, Duration maxWait) {
    if (maxWait.toMillis() < 1) {
      throw new IllegalArgumentException("the longest wait for the daemon must be at least 1 ms: " + maxWait);
    }
    this.maxWaitNanos = maxWait.toNanos();
    this.store = store;
    this.waker = waker;
    this.msgIds = new CyclicIds(0, msgIdMax);
    this.objectIds = new CyclicIds(1, objectIdMax);
  }

  // ---------------------------------------------------------------- the device's commands

  /** {@code bind ondemand}: starts a device generation. -EBUSY if one is bound. */
  public synchronized int bind() {
    if (shutdown) {
      return -Errno.EIO;
    }
    if (current != null) {
      return -Errno.EBUSY;
    }
    current = new Generation(++generations);
    log.info("device bound: {}", current);
    notifyAll(); // awaitBound
    return 0;
  }

  public synchronized boolean isBound() {
    return current != null;
  }

  /**
   * Waits up to {@code millis} for a device to be bound (a daemon to connect); true if one is.
   * For requests that come before any daemon does, as a fanotify relay's that took over the
   * mounts of a dead one.
   */
  public synchronized boolean awaitBound(long millis) throws InterruptedException {
    long deadline = System.nanoTime() + millis * 1_000_000L;
    while (current == null && !shutdown) {
      long left = (deadline - System.nanoTime()) / 1_000_000L;
      if (left <= 0) {
        break;
      }
      wait(left);
    }
    return current != null;
  }

  /**
   * READ datagram: the next deliverable request (cyclic scan after the last delivered id), or
   * null when there is none (read(2) returning 0). A NEW READ of a CLOSE object is skipped and
   * starts a re-open: the object goes REOPENING and an OPEN is queued, unless a NEW OPEN of
   * it is already pending (one re-marked by restore serves as the re-open: a second one would
   * only fail with EEXIST).
   */
  public synchronized Delivery select() {
    if (current == null) {
      return null;
    }
    List<Long> order = new ArrayList<>(newIds.tailSet(lastDelivered, false));
    order.addAll(newIds.headSet(lastDelivered, true));
    List<CacheObject> reopen = new ArrayList<>();
    Delivery d = null;
    for (long id : order) {
      PendingRequest r = pending.get(id);
      if (r.opcode == Opcode.READ) {
        CacheObject o = r.object;
        if (o.state == ObjectState.CLOSE) {
          setState(o, ObjectState.REOPENING, r);
          if (o.pendingOpen == null || !newIds.contains(o.pendingOpen.msgId)) {
            reopen.add(o);
          }
          continue;
        }
        if (o.state == ObjectState.REOPENING) {
          continue;
        }
      }
      d = deliver(r);
      break;
    }
    // Like the kernel's re-open worker: the OPEN is queued after this read, not returned by it.
    for (CacheObject o : reopen) {
      o.pendingOpen = enqueue(o, Opcode.OPEN, 0, 0, true);
    }
    return d;
  }

  private Delivery deliver(PendingRequest r) {
    newIds.remove(r.msgId);
    lastDelivered = r.msgId;
    CacheObject o = r.object;
    switch (r.opcode) {
      case OPEN: {
        if (o.objectId > 0) {
          // restore re-marked an OPEN whose object still has a live anon: the kernel's EEXIST.
          log.warn("{}: object still has live id {}: failing it with EEXIST", r, o.objectId);
          finish(r, -Errno.EEXIST);
          return Delivery.failed(r, Errno.EEXIST);
        }
        StoreFile f;
        try {
          f = store.file(o.volumeKey, o.cookieKey);
        } catch (ErrnoException e) {
          log.warn("{}: cannot open its cache file: {}", r, e.getMessage());
          finish(r, -e.errno());
          return Delivery.failed(r, e.errno());
        }
        long id = objectIds.allocate(anons::containsKey);
        if (id < 0) {
          finish(r, -Errno.EBUSY);
          return Delivery.failed(r, Errno.EBUSY);
        }
        Anon a = new Anon((int) id, o, r);
        anons.put(id, a);
        r.anon = a;
        o.objectId = (int) id;
        o.file = f;
        log.debug("msg {} OPEN delivered: object {} gets id {}", r.msgId, o.describe(), id);
        return new Delivery(r, new Message.Open((int) r.msgId, (int) id, o.volumeKey, o.cookieKey, -1, 0), a, f, 0);
      }
      case CLOSE: {
        int id = o.objectId;
        finish(r, 0); // CLOSE has no reply: it is done once delivered
        // The kernel's object is gone after its CLOSE; here it stays, CLOSE, and a later READ
        // re-opens it with a fresh OPEN instead of reaching a daemon that dropped the id.
        o.objectId = CacheObject.ID_CLOSED;
        setState(o, ObjectState.CLOSE, r);
        return new Delivery(r, new Message.Close((int) r.msgId, id), null, null, 0);
      }
      case READ:
        log.debug("msg {} READ delivered: object {} id {} [{}, {})", r.msgId, o.describe(), o.objectId,
            r.offset, r.offset + r.length);
        return new Delivery(r, new Message.Read((int) r.msgId, o.objectId, r.offset, r.length), null, null, 0);
      default:
        throw new AssertionError(r.opcode);
    }
  }

  /**
   * The device server could not hand out {@code d} (no socket pair, the send failed): the
   * request fails with {@code errno}, as when the kernel cannot install an anon fd, and an
   * OPEN's new id is released again.
   */
  public synchronized void deliveryFailed(Delivery d, int errno) {
    PendingRequest r = d.request();
    log.warn("{}: delivery failed: {}", r, Errno.describe(errno));
    if (d.anon() != null) {
      Anon a = d.anon();
      a.closed = true;
      anons.remove((long) a.objectId);
      CacheObject o = a.object;
      if (o.objectId == a.objectId) {
        o.objectId = CacheObject.ID_CLOSED;
        if (o.state == ObjectState.REOPENING) {
          setState(o, ObjectState.CLOSE, r);
        }
      }
    }
    if (pending.get(r.msgId) == r) {
      finish(r, -errno);
    }
  }

  /**
   * {@code copen <msgId>,<size>}: answers a delivered OPEN. Returns what write(2) returns: 0,
   * or -EINVAL when {@code msgId} is not a delivered OPEN (nothing is consumed then), or
   * -EOPNOTSUPP before bind. A consumed OPEN whose anon socket has closed fails with EBADFD
   * (write still succeeds); a negative size fails it with that errno.
   */
  public synchronized int copen(int msgId, long size) {
    if (current == null) {
      return -Errno.EOPNOTSUPP;
    }
    PendingRequest r = pending.get(Integer.toUnsignedLong(msgId));
    if (r == null || r.opcode != Opcode.OPEN || r.anon == null) {
      log.debug("copen {}: not a delivered OPEN: EINVAL", Integer.toUnsignedString(msgId));
      return -Errno.EINVAL;
    }
    CacheObject o = r.object;
    Anon a = r.anon;
    if (a.closed || o.objectId != a.objectId) {
      log.info("{}: copen after its anon fd was closed: the OPEN fails with EBADFD", r);
      finish(r, -Errno.EBADFD);
      return 0;
    }
    if (size < 0) {
      log.info("{}: daemon failed the OPEN: {}", r, Errno.describe((int) -size));
      finish(r, (int) size);
      if (!r.reopen) {
        // A failed lookup forgets the object, like the kernel's failed cookie: the anon is
        // stale from now on (the daemon closes it), and the next lookup sends a new OPEN.
        o.objectId = CacheObject.ID_CLOSED;
      }
      // A failed re-open stays REOPENING until the daemon closes that anon (§3.1).
      return 0;
    }
    CacheStore.Coherency c;
    try {
      c = store.prepare(o.file, size);
    } catch (ErrnoException e) {
      log.warn("{}: cache file {}: {}: the OPEN fails", r, o.file, e.getMessage());
      finish(r, -e.errno());
      return 0;
    }
    o.size = size;
    setState(o, ObjectState.OPEN, r);
    finish(r, 0);
    log.info("OPEN {}: volume {}, cookie {}, object {}, size {} (msg {}{}), cache file {} {}",
        o.describe(), io.lazypull.protocol.MessageCodec.printable(o.volumeKey),
        io.lazypull.protocol.MessageCodec.printable(o.cookieKey), o.objectId, size, r.msgId,
        r.reopen ? ", re-open" : "", o.file, c.name().toLowerCase(java.util.Locale.ROOT));
    waker.wakeDaemon(); // its READs may be deliverable now
    return 0;
  }

  /**
   * CREAD on {@code anon}'s socket ({@code CACHEFILES_IOC_READ_COMPLETE}): completes READ
   * {@code msgId}, which must be a READ of the same object (-EINVAL otherwise).
   */
  public synchronized int cread(Anon anon, int msgId) {
    PendingRequest r = pending.get(Integer.toUnsignedLong(msgId));
    if (r == null || r.opcode != Opcode.READ || r.object != anon.object) {
      log.debug("CREAD {} on {}: not a pending READ of that object: EINVAL", Integer.toUnsignedString(msgId), anon);
      return -Errno.EINVAL;
    }
    finish(r, 0);
    log.debug("msg {} READ completed on object id {}", r.msgId, anon.objectId);
    return 0;
  }

  /**
   * The last copy of {@code anon}'s fd closed (the daemon closed it or died). If it still names
   * its object, the object goes CLOSE (its pending READs stay queued: failover) and a still-NEW
   * CLOSE of it is dropped. Either way its id is released.
   */
  public synchronized void anonClosed(Anon anon) {
    if (anon.closed) {
      return;
    }
    anon.closed = true;
    anons.remove((long) anon.objectId);
    CacheObject o = anon.object;
    if (o.objectId != anon.objectId) {
      log.debug("anon of id {} closed: stale, object {} has id {}", anon.objectId, o.describe(), o.objectId);
      return;
    }
    o.objectId = CacheObject.ID_CLOSED;
    setState(o, ObjectState.CLOSE, "anon fd of id " + anon.objectId + " closed");
    PendingRequest close = o.closeRequest;
    if (close != null && newIds.contains(close.msgId)) {
      finish(close, 0);
    }
  }

  /** {@code restore}: every pending request becomes NEW again, whatever its object's state. */
  public synchronized int restore() {
    if (current == null) {
      return -Errno.EOPNOTSUPP;
    }
    newIds.addAll(pending.keySet());
    restores++;
    log.info("restore: {} pending requests re-marked NEW", pending.size());
    waker.wakeDaemon();
    return 0;
  }

  /**
   * The device socket's last copy closed: the cache is DEAD. Every pending request fails with
   * EIO, so does every later one of this generation; its objects stay dead.
   */
  public synchronized void deviceGone() {
    Generation g = current;
    if (g == null) {
      return;
    }
    log.warn("device gone: {} dead, {} pending requests fail with EIO", g, pending.size());
    killGeneration(g);
  }

  /** The shim stops: like {@link #deviceGone}, and nothing is accepted afterwards. */
  public synchronized void shutdown() {
    shutdown = true;
    if (current != null) {
      killGeneration(current);
    }
  }

  private void killGeneration(Generation g) {
    g.dead = true;
    current = null;
    for (PendingRequest r : new ArrayList<>(pending.values())) {
      finish(r, -Errno.EIO);
    }
    objects.clear();
  }

  // ---------------------------------------------------------------- FUSE's side

  /**
   * The current generation's object for (volume, cookie), created if needed.
   *
   * @throws ErrnoException EIO when no device is bound (none yet, or it died)
   */
  public synchronized CacheObject object(String volumeKey, String cookieKey) throws ErrnoException {
    if (current == null) {
      throw new ErrnoException("lookup", Errno.EIO, "no device bound (start the daemon)");
    }
    Generation g = current;
    return objects.computeIfAbsent(List.of(volumeKey, cookieKey), k -> new CacheObject(volumeKey, cookieKey, g));
  }

  /**
   * The OPEN a lookup of {@code o} waits for, queued if none is pending; null if the object
   * already has a size (OPEN, or CLOSE/REOPENING after its anon closed: re-opens are lazy).
   */
  public synchronized PendingRequest requestOpen(CacheObject o) {
    if (o.size >= 0) {
      return null;
    }
    if (o.pendingOpen == null) {
      o.pendingOpen = enqueue(o, Opcode.OPEN, 0, 0, false);
    }
    return o.pendingOpen;
  }

  /**
   * The longest a lookup or a read waits for the daemon's answer before it fails with EIO. A
   * daemon that serves answers every READ within its own read timeout, so this only bounds the
   * waits no daemon answers at all: none connected (only a holder keeps the device), or a hung
   * one. Keep it above the daemon's read timeout plus the time a supervisor takes to restart
   * it. The kernel's cachefiles has no such bound.
   */
  public long maxWaitNanos() {
    return maxWaitNanos;
  }

  /**
   * A lookup: {@link #object} then, if needed, waits for its OPEN, at most {@link
   * #maxWaitNanos()} (then EIO; the OPEN stays queued for the next lookup).
   */
  public CacheObject lookup(String volumeKey, String cookieKey, long logEveryMillis) throws ErrnoException {
    CacheObject o = object(volumeKey, cookieKey);
    PendingRequest open = requestOpen(o);
    if (open != null) {
      int r = open.await(log, logEveryMillis, System.nanoTime() + maxWaitNanos);
      if (r == -Errno.ETIMEDOUT) {
        log.warn("lookup of {}: no answer to {} within {} ms (no daemon serving?): EIO", o.describe(), open,
            TimeUnit.NANOSECONDS.toMillis(maxWaitNanos));
        throw new ErrnoException("lookup", Errno.EIO, o.describe() + ": no answer from the daemon");
      }
      if (r < 0) {
        throw new ErrnoException("lookup", -r, o.describe());
      }
    }
    return o;
  }

  /**
   * Withdraws a READ nobody waits for any more (its reader gave up at {@link #maxWaitNanos()}):
   * it leaves the table with -ETIMEDOUT, so a later CREAD of it gets EINVAL, as the kernel does
   * for the READ of a killed reader. Returns false if it was completed meanwhile.
   */
  public synchronized boolean abandon(PendingRequest r) {
    if (r.opcode != Opcode.READ || pending.get(r.msgId) != r) {
      return false;
    }
    log.debug("{}: abandoned by its reader", r);
    finish(r, -Errno.ETIMEDOUT);
    return true;
  }

  /** Queues a READ of [offset, offset+length) of {@code o} (completed at once with EIO if dead). */
  public synchronized PendingRequest requestRead(CacheObject o, long offset, long length) {
    return enqueue(o, Opcode.READ, offset, length, false);
  }

  /** A FUSE open of {@code o}: a CLOSE of it that the daemon has not read yet is withdrawn. */
  public synchronized void acquire(CacheObject o) {
    o.users++;
    PendingRequest close = o.closeRequest;
    if (close != null && newIds.contains(close.msgId)) {
      log.debug("{}: withdrawn, the object is open again", close);
      finish(close, 0);
    }
  }

  /** A FUSE release of {@code o}: the last one of an OPEN object queues a CLOSE. */
  public synchronized void release(CacheObject o) {
    if (--o.users == 0 && o.state == ObjectState.OPEN && o.generation == current) {
      o.closeRequest = enqueue(o, Opcode.CLOSE, 0, 0, false);
    }
  }

  // ---------------------------------------------------------------- the table

  private PendingRequest enqueue(CacheObject o, Opcode op, long offset, long length, boolean reopen) {
    PendingRequest r = new PendingRequest(op, o, offset, length, reopen);
    if (shutdown || o.generation.dead || o.generation != current) {
      r.complete(-Errno.EIO);
      return r;
    }
    long id = msgIds.allocate(pending::containsKey);
    if (id < 0) {
      r.complete(-Errno.EBUSY);
      return r;
    }
    r.msgId = id;
    pending.put(id, r);
    newIds.add(id);
    log.debug("msg {} queued: {}", id, r);
    waker.wakeDaemon();
    return r;
  }

  /** Removes {@code r} from the table and completes it: the one way out of the table. */
  private void finish(PendingRequest r, int result) {
    pending.remove(r.msgId);
    newIds.remove(r.msgId);
    CacheObject o = r.object;
    if (o.pendingOpen == r) {
      o.pendingOpen = null;
    }
    if (o.closeRequest == r) {
      o.closeRequest = null;
    }
    r.complete(result);
  }

  private void setState(CacheObject o, ObjectState to, Object why) {
    ObjectState from = o.state;
    if (from != to) {
      o.state = to;
      log.debug("object {} id {}: {} -> {} ({})", o.describe(), o.objectId, from, to, why);
    }
  }

  // ---------------------------------------------------------------- eviction

  /**
   * True if the blob's object is in use: open (a FUSE handle, a mounted image's), or with a
   * request pending. Eviction never removes a blob in use.
   */
  public synchronized boolean inUse(String volumeKey, String cookieKey) {
    CacheObject o = objects.get(List.of(volumeKey, cookieKey));
    if (o == null) {
      return false;
    }
    if (o.users > 0 || o.pendingOpen != null || o.closeRequest != null) {
      return true;
    }
    for (PendingRequest r : pending.values()) {
      if (r.object == o) {
        return true;
      }
    }
    return false;
  }

  /**
   * Forgets a blob nobody uses and removes its cache file, in one step under the lock a
   * delivered OPEN takes to open that file: the next lookup makes a new object and file. False
   * (nothing done) while it is in use or the daemon still has it open.
   */
  public synchronized boolean forget(String volumeKey, String cookieKey) {
    if (inUse(volumeKey, cookieKey)) {
      return false;
    }
    List<String> key = List.of(volumeKey, cookieKey);
    CacheObject o = objects.get(key);
    if (o != null && o.objectId > 0) {
      return false;
    }
    objects.remove(key);
    return store.remove(volumeKey, cookieKey);
  }

  // ---------------------------------------------------------------- inspection

  /** The pending requests, by msg id (for tests and diagnostics). */
  public synchronized List<PendingRequest> pendingRequests() {
    return new ArrayList<>(pending.values());
  }

  /** True if {@code r} is pending and carries the NEW mark. */
  public synchronized boolean isNew(PendingRequest r) {
    return pending.get(r.msgId) == r && newIds.contains(r.msgId);
  }

  /** The current generation's objects. */
  public synchronized List<CacheObject> objects() {
    return new ArrayList<>(objects.values());
  }

  /** Device generations so far: each bind by a daemon that did not take a held device starts one. */
  public synchronized int generations() {
    return generations;
  }

  /** {@code restore}s written so far: daemons that took the device over from a dead one. */
  public synchronized long restores() {
    return restores;
  }

  /** How many requests are pending (queued or delivered, not completed). */
  public synchronized int pendingCount() {
    return pending.size();
  }

  /** How many anon sockets are live (ids in use). */
  public synchronized int liveAnons() {
    return anons.size();
  }
}
