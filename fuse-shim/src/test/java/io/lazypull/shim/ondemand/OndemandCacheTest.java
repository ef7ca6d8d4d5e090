package io.lazypull.shim.ondemand;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.protocol.Message;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The cachefiles state machine without FUSE or sockets: the device server's calls are made
 * directly ({@code select} is one READ datagram, {@code copen} one WRITE, {@code anonClosed}
 * one anon EOF). Transitions are checked as a table, in the manner of Caffeine's
 * BoundedLocalCacheTest.
 */
class OndemandCacheTest {
  private static final String VOL = "erofs,dom";

  @TempDir Path tmp;
  CacheStore store;
  OndemandCache cache;
  final AtomicInteger wakeups = new AtomicInteger();
  /** The anon of each object's latest delivered OPEN. */
  final Map<CacheObject, Anon> anonOf = new HashMap<>();

  @BeforeEach
  void setUp() throws Exception {
    store = new CacheStore(tmp.resolve("cache"));
    cache = new OndemandCache(store, wakeups::incrementAndGet);
    assertThat(cache.bind()).isZero();
  }

  // ------------------------------------------------------------------ helpers

  CacheObject object(String cookie) throws ErrnoException {
    return cache.object(VOL, cookie);
  }

  /** One READ datagram that must deliver a message. */
  Message selectMessage() {
    Delivery d = cache.select();
    assertThat(d).as("a deliverable request").isNotNull();
    assertThat(d.isFailure()).as("delivery error %s", d.errno()).isFalse();
    if (d.anon() != null) {
      anonOf.put(d.anon().object(), d.anon());
    }
    return d.message();
  }

  /** An object looked up and copen'ed with {@code size}: OPEN. */
  CacheObject opened(String cookie, long size) throws ErrnoException {
    CacheObject o = object(cookie);
    PendingRequest open = cache.requestOpen(o);
    Message.Open m = (Message.Open) selectMessage();
    assertThat(cache.copen(m.msgId(), size)).isZero();
    assertThat(open.isDone()).isTrue();
    assertThat(open.result()).isZero();
    return o;
  }

  /** OPEN, then its anon closes (the daemon died): CLOSE with a size. */
  CacheObject closedAfterAnon(String cookie) throws ErrnoException {
    CacheObject o = opened(cookie, 8192);
    cache.anonClosed(anonOf.get(o));
    return o;
  }

  /** CLOSE after an anon close, then a READ meets it: REOPENING with a NEW re-open OPEN. */
  CacheObject reopening(String cookie) throws ErrnoException {
    CacheObject o = closedAfterAnon(cookie);
    cache.requestRead(o, 0, 4096);
    assertThat(cache.select()).isNull();
    return o;
  }

  Message.Open deliverReopen() {
    Message m = selectMessage();
    assertThat(m).isInstanceOf(Message.Open.class);
    return (Message.Open) m;
  }

  // ------------------------------------------------------------------ the transition table

  interface Setup {
    CacheObject run(OndemandCacheTest t) throws Exception;
  }

  interface Event {
    void run(OndemandCacheTest t, CacheObject o) throws Exception;
  }

  static Arguments row(String name, Setup start, ObjectState from, Event event, ObjectState to) {
    return Arguments.of(name, start, from, event, to);
  }

  static Stream<Arguments> transitions() {
    Setup fresh = t -> t.object("b");
    Setup open = t -> t.opened("b", 4096);
    Setup closed = t -> t.closedAfterAnon("b");
    Setup reopening = t -> t.reopening("b");
    return Stream.of(
        row("lookup OPEN copen'ed", fresh, ObjectState.CLOSE, (t, o) -> {
          t.cache.requestOpen(o);
          t.cache.copen(t.selectMessage().msgId(), 100);
        }, ObjectState.OPEN),
        row("lookup OPEN failed by the daemon", fresh, ObjectState.CLOSE, (t, o) -> {
          t.cache.requestOpen(o);
          t.cache.copen(t.selectMessage().msgId(), -Errno.ENOENT);
        }, ObjectState.CLOSE),
        row("anon closed", open, ObjectState.OPEN, (t, o) -> t.cache.anonClosed(t.anonOf.get(o)), ObjectState.CLOSE),
        row("CLOSE delivered", open, ObjectState.OPEN, (t, o) -> {
          t.cache.acquire(o);
          t.cache.release(o);
          assertThat(t.selectMessage()).isInstanceOf(Message.Close.class);
        }, ObjectState.CLOSE),
        row("restore", open, ObjectState.OPEN, (t, o) -> t.cache.restore(), ObjectState.OPEN),
        row("READ delivered", open, ObjectState.OPEN, (t, o) -> {
          t.cache.requestRead(o, 0, 4096);
          assertThat(t.selectMessage()).isInstanceOf(Message.Read.class);
        }, ObjectState.OPEN),
        row("select meets a READ", closed, ObjectState.CLOSE, (t, o) -> {
          t.cache.requestRead(o, 0, 4096);
          assertThat(t.cache.select()).isNull();
        }, ObjectState.REOPENING),
        row("stale anon closed", closed, ObjectState.CLOSE, (t, o) -> {
          Anon old = t.anonOf.get(o);
          t.cache.anonClosed(old); // a second EOF is a no-op
        }, ObjectState.CLOSE),
        row("re-open copen'ed", reopening, ObjectState.REOPENING,
            (t, o) -> t.cache.copen(t.deliverReopen().msgId(), 8192), ObjectState.OPEN),
        row("re-open failed, anon still open", reopening, ObjectState.REOPENING,
            (t, o) -> t.cache.copen(t.deliverReopen().msgId(), -Errno.EIO), ObjectState.REOPENING),
        row("re-open's anon closed", reopening, ObjectState.REOPENING, (t, o) -> {
          t.deliverReopen();
          t.cache.anonClosed(t.anonOf.get(o));
        }, ObjectState.CLOSE),
        row("another READ while re-opening", reopening, ObjectState.REOPENING, (t, o) -> {
          t.cache.requestRead(o, 4096, 4096);
          assertThat(t.selectMessage()).isInstanceOf(Message.Open.class);
          assertThat(t.cache.select()).as("READs wait for the copen").isNull();
        }, ObjectState.REOPENING),
        row("restore while re-opening", reopening, ObjectState.REOPENING, (t, o) -> t.cache.restore(),
            ObjectState.REOPENING));
  }

  @ParameterizedTest(name = "{2} --{0}--> {4}")
  @MethodSource("transitions")
  void transition(String name, Setup start, ObjectState from, Event event, ObjectState to) throws Exception {
    CacheObject o = start.run(this);
    assertThat(o.state()).as("start state").isEqualTo(from);
    event.run(this, o);
    assertThat(o.state()).isEqualTo(to);
  }

  // ------------------------------------------------------------------ failover

  @Test
  void readOnCloseObject_reopensFirst_thenReadKeepsItsMsgIdWithTheNewObjectId() throws Exception {
    CacheObject o = opened("b", 3 * 4096);
    int oldId = o.objectId();
    PendingRequest read = cache.requestRead(o, 4096, 4096);
    Message.Read delivered = (Message.Read) selectMessage();
    assertThat(delivered.msgId()).isEqualTo(read.msgId());
    assertThat(delivered.objectId()).isEqualTo(oldId);

    cache.anonClosed(anonOf.get(o)); // the daemon dies before completing it
    assertThat(o.state()).isEqualTo(ObjectState.CLOSE);
    assertThat(read.isDone()).as("pending READs survive the anon close").isFalse();
    assertThat(cache.select()).as("delivered, so not NEW").isNull();

    assertThat(cache.restore()).isZero();
    assertThat(cache.select()).as("the READ only starts the re-open").isNull();
    assertThat(o.state()).isEqualTo(ObjectState.REOPENING);

    Message.Open reopen = deliverReopen();
    assertThat(reopen.msgId()).isNotEqualTo(read.msgId());
    assertThat(reopen.objectId()).isNotEqualTo(oldId).isEqualTo(o.objectId());
    assertThat(reopen.volumeKey()).isEqualTo(VOL);
    assertThat(reopen.cookieKey()).isEqualTo("b");
    assertThat(cache.select()).as("READ held back until copen").isNull();

    assertThat(cache.copen(reopen.msgId(), 3 * 4096)).isZero();
    Message.Read again = (Message.Read) selectMessage();
    assertThat(again.msgId()).isEqualTo(read.msgId());
    assertThat(again.objectId()).isEqualTo(reopen.objectId());
    assertThat(again.offset()).isEqualTo(4096);
    assertThat(cache.cread(anonOf.get(o), again.msgId())).isZero();
    assertThat(read.isDone()).isTrue();
    assertThat(read.result()).isZero();
  }

  @Test
  void restore_reMarksEveryPendingRequest_whateverItsState() throws Exception {
    CacheObject a = opened("a", 4096);
    CacheObject b = object("b");
    PendingRequest openB = cache.requestOpen(b);
    PendingRequest readA = cache.requestRead(a, 0, 4096);
    selectMessage(); // OPEN b (delivered, not answered)
    selectMessage(); // READ a (delivered, not completed)
    assertThat(cache.isNew(openB)).isFalse();
    assertThat(cache.isNew(readA)).isFalse();
    cache.anonClosed(anonOf.get(b)); // b's daemon died mid-OPEN

    int before = wakeups.get();
    assertThat(cache.restore()).isZero();
    assertThat(wakeups.get()).isGreaterThan(before);
    assertThat(cache.isNew(openB)).isTrue();
    assertThat(cache.isNew(readA)).isTrue();

    // The unanswered OPEN comes again with its msg id and a new object id.
    List<Message> out = new ArrayList<>();
    out.add(selectMessage());
    out.add(selectMessage());
    assertThat(out).anySatisfy(m -> {
      assertThat(m).isInstanceOf(Message.Open.class);
      assertThat(m.msgId()).isEqualTo(openB.msgId());
      assertThat(m.objectId()).isEqualTo(b.objectId()).isPositive();
    });
    assertThat(out).anySatisfy(m -> assertThat(m.msgId()).isEqualTo(readA.msgId()));
  }

  @Test
  void restore_whileTheOpensAnonIsLive_failsTheRedeliveredOpenWithEexist() throws Exception {
    CacheObject o = object("b");
    PendingRequest open = cache.requestOpen(o);
    selectMessage();
    cache.restore();
    Delivery d = cache.select();
    assertThat(d.errno()).isEqualTo(Errno.EEXIST);
    assertThat(open.result()).isEqualTo(-Errno.EEXIST);
  }

  @Test
  void anonEof_withStaleObjectId_isIgnored() throws Exception {
    CacheObject o = opened("b", 4096);
    Anon first = anonOf.get(o);
    cache.acquire(o);
    cache.release(o);
    Message.Close close = (Message.Close) selectMessage();
    assertThat(close.objectId()).isEqualTo(first.objectId());
    // A READ re-opens the object under a new id before the daemon closes the old fd.
    cache.requestRead(o, 0, 4096);
    assertThat(cache.select()).isNull();
    Message.Open reopen = deliverReopen();
    cache.copen(reopen.msgId(), 4096);
    assertThat(o.state()).isEqualTo(ObjectState.OPEN);

    cache.anonClosed(first); // the daemon now closes the CLOSEd object's fd
    assertThat(o.state()).isEqualTo(ObjectState.OPEN);
    assertThat(o.objectId()).isEqualTo(reopen.objectId());
    assertThat(selectMessage()).isInstanceOf(Message.Read.class);
  }

  @Test
  void failedReopen_staysReopening_untilItsAnonCloses_thenReopensAgain() throws Exception {
    CacheObject o = reopening("b");
    Message.Open first = deliverReopen();
    cache.copen(first.msgId(), -Errno.EIO);
    assertThat(cache.select()).as("READ held back").isNull();
    cache.anonClosed(anonOf.get(o));
    assertThat(o.state()).isEqualTo(ObjectState.CLOSE);
    assertThat(cache.select()).isNull();
    Message.Open second = deliverReopen();
    assertThat(second.msgId()).isNotEqualTo(first.msgId());
  }

  // ------------------------------------------------------------------ copen and cread

  @Test
  void copen_ofNonOpenOrUndeliveredMsgId_isEinval_andConsumesNothing() throws Exception {
    CacheObject o = opened("a", 4096);
    PendingRequest read = cache.requestRead(o, 0, 4096);
    assertThat(cache.copen(read.msgId(), 4096)).as("a READ").isEqualTo(-Errno.EINVAL);
    PendingRequest open = cache.requestOpen(object("b"));
    assertThat(cache.copen(open.msgId(), 4096)).as("not delivered").isEqualTo(-Errno.EINVAL);
    assertThat(cache.copen(12345, 4096)).as("unknown").isEqualTo(-Errno.EINVAL);
    assertThat(cache.pendingRequests()).contains(read, open);
    assertThat(open.isDone()).isFalse();
  }

  @Test
  void copen_afterItsAnonClosed_failsTheOpenWithEbadfd() throws Exception {
    CacheObject o = object("b");
    PendingRequest open = cache.requestOpen(o);
    Message.Open m = (Message.Open) selectMessage();
    cache.anonClosed(anonOf.get(o));
    assertThat(cache.copen(m.msgId(), 4096)).as("write succeeds").isZero();
    assertThat(open.result()).isEqualTo(-Errno.EBADFD);
    assertThat(o.state()).isEqualTo(ObjectState.CLOSE);
    assertThat(o.size()).isEqualTo(-1);
  }

  @Test
  void copen_negative_failsTheLookupWithThatErrno_andTheNextLookupSendsANewOpen() throws Exception {
    CacheObject o = object("b");
    PendingRequest open = cache.requestOpen(o);
    Message.Open m = (Message.Open) selectMessage();
    cache.copen(m.msgId(), -Errno.ENOENT);
    assertThat(open.result()).isEqualTo(-Errno.ENOENT);
    PendingRequest again = cache.requestOpen(o);
    assertThat(again).isNotSameAs(open);
    Message.Open m2 = (Message.Open) selectMessage();
    assertThat(m2.objectId()).isNotEqualTo(m.objectId());
  }

  @Test
  void copen_beforeBind_andRestoreBeforeBind_areEopnotsupp() throws Exception {
    OndemandCache unbound = new OndemandCache(store, () -> {});
    assertThat(unbound.copen(0, 1)).isEqualTo(-Errno.EOPNOTSUPP);
    assertThat(unbound.restore()).isEqualTo(-Errno.EOPNOTSUPP);
    assertThat(unbound.select()).isNull();
    assertThatThrownBy(() -> unbound.object(VOL, "b")).isInstanceOf(ErrnoException.class)
        .satisfies(e -> assertThat(((ErrnoException) e).errno()).isEqualTo(Errno.EIO));
  }

  @Test
  void cread_completesOnlyAReadOfTheSameObject() throws Exception {
    CacheObject a = opened("a", 4096);
    CacheObject b = opened("b", 4096);
    PendingRequest read = cache.requestRead(a, 0, 4096);
    selectMessage();
    assertThat(cache.cread(anonOf.get(b), read.msgId())).as("other object").isEqualTo(-Errno.EINVAL);
    PendingRequest open = cache.requestOpen(object("c"));
    assertThat(cache.cread(anonOf.get(a), open.msgId())).as("not a READ").isEqualTo(-Errno.EINVAL);
    assertThat(read.isDone()).isFalse();
    assertThat(cache.cread(anonOf.get(a), read.msgId())).isZero();
    assertThat(read.result()).isZero();
    assertThat(cache.cread(anonOf.get(a), read.msgId())).as("twice").isEqualTo(-Errno.EINVAL);
  }

  // ------------------------------------------------------------------ CLOSE

  @Test
  void lastRelease_queuesClose_whichAReopenWithdraws_andAnAnonCloseDrops() throws Exception {
    CacheObject o = opened("b", 4096);
    cache.acquire(o);
    cache.acquire(o);
    cache.release(o);
    assertThat(cache.pendingRequests()).isEmpty();
    cache.release(o);
    PendingRequest close = cache.pendingRequests().get(0);
    assertThat(close.opcode()).isEqualTo(io.lazypull.protocol.Opcode.CLOSE);

    cache.acquire(o); // opened again before the daemon read it
    assertThat(close.isDone()).isTrue();
    assertThat(cache.pendingRequests()).isEmpty();

    cache.release(o);
    assertThat(cache.pendingRequests()).hasSize(1);
    cache.anonClosed(anonOf.get(o)); // the daemon closed the fd on its own
    assertThat(cache.pendingRequests()).as("a still-NEW CLOSE is dropped").isEmpty();
  }

  // ------------------------------------------------------------------ device death

  @Test
  void deviceDeath_failsEveryWaiterWithEio_andLaterRequests_untilANewBindAndLookup() throws Exception {
    CacheObject a = opened("a", 4096);
    PendingRequest read = cache.requestRead(a, 0, 4096);
    selectMessage();
    PendingRequest open = cache.requestOpen(object("b"));
    cache.deviceGone();
    assertThat(read.result()).isEqualTo(-Errno.EIO);
    assertThat(open.result()).isEqualTo(-Errno.EIO);
    assertThat(a.isDead()).isTrue();
    assertThat(cache.requestRead(a, 0, 4096).result()).isEqualTo(-Errno.EIO);
    assertThatThrownBy(() -> object("a")).isInstanceOf(ErrnoException.class);
    assertThat(cache.copen(0, 1)).isEqualTo(-Errno.EOPNOTSUPP);

    assertThat(cache.bind()).isZero();
    CacheObject fresh = object("a");
    assertThat(fresh).isNotSameAs(a);
    assertThat(fresh.size()).as("looked up anew").isEqualTo(-1);
    assertThat(a.isDead()).as("old handles stay dead").isTrue();
  }

  @Test
  void shutdown_failsWaitersWithEio() throws Exception {
    CacheObject a = opened("a", 4096);
    PendingRequest read = cache.requestRead(a, 0, 4096);
    cache.shutdown();
    assertThat(read.result()).isEqualTo(-Errno.EIO);
    assertThat(cache.bind()).isEqualTo(-Errno.EIO);
  }

  @Test
  void secondBind_isEbusy() {
    assertThat(cache.bind()).isEqualTo(-Errno.EBUSY);
  }

  // ------------------------------------------------------------------ ids and delivery order

  @Test
  void msgIds_areCyclic_startAtZero_andAreNotReusedAtOnce() throws Exception {
    cache = new OndemandCache(store, () -> {}, 3, 100);
    cache.bind();
    CacheObject o = opened("b", 1 << 20); // msg 0, freed by its copen
    PendingRequest r1 = cache.requestRead(o, 0, 4096);
    assertThat(r1.msgId()).isEqualTo(1);
    selectMessage();
    cache.cread(anonOf.get(o), 1);
    List<Integer> ids = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      ids.add(cache.requestRead(o, i * 4096L, 4096).msgId());
    }
    assertThat(ids).as("1 is free but comes last").containsExactly(2, 3, 0, 1);
    assertThat(cache.requestRead(o, 0, 4096).result()).as("table full").isEqualTo(-Errno.EBUSY);
  }

  @Test
  void objectIds_areCyclicFromOne_skippingLiveOnes() throws Exception {
    cache = new OndemandCache(store, () -> {}, 1000, 3);
    cache.bind();
    CacheObject a = opened("a", 4096);
    CacheObject b = opened("b", 4096);
    CacheObject c = opened("c", 4096);
    assertThat(List.of(a.objectId(), b.objectId(), c.objectId())).containsExactly(1, 2, 3);
    cache.anonClosed(anonOf.get(b));
    CacheObject d = object("d");
    cache.requestOpen(d);
    Delivery open = cache.select();
    assertThat(open.message()).isNotNull();
    assertThat(open.anon().objectId()).as("only 2 is free").isEqualTo(2);
  }

  @Test
  void select_scansCyclicallyAfterTheLastDelivered() throws Exception {
    CacheObject o = opened("b", 1 << 20); // msg 0 delivered
    PendingRequest r1 = cache.requestRead(o, 0, 4096);
    PendingRequest r2 = cache.requestRead(o, 4096, 4096);
    PendingRequest r3 = cache.requestRead(o, 8192, 4096);
    assertThat(selectMessage().msgId()).isEqualTo(r1.msgId());
    cache.restore(); // r1 NEW again, but the scan goes on after it
    assertThat(selectMessage().msgId()).isEqualTo(r2.msgId());
    assertThat(selectMessage().msgId()).isEqualTo(r3.msgId());
    assertThat(selectMessage().msgId()).isEqualTo(r1.msgId());
    assertThat(cache.select()).isNull();
  }

  @Test
  void wakeups_onNewRequest_successfulCopen_andRestore() throws Exception {
    CacheObject o = object("b");
    int w0 = wakeups.get();
    cache.requestOpen(o);
    assertThat(wakeups.get()).isEqualTo(w0 + 1);
    Message.Open m = (Message.Open) selectMessage();
    cache.copen(m.msgId(), 4096);
    assertThat(wakeups.get()).isEqualTo(w0 + 2);
    cache.restore();
    assertThat(wakeups.get()).isEqualTo(w0 + 3);
  }

  // ------------------------------------------------------------------ persistence

  @Test
  void copen_keepsTheCacheFileWithTheSameSize_andDiscardsItOnAChange() throws Exception {
    CacheObject o = opened("b", 10000);
    StoreFile f = o.file();
    assertThat(java.nio.file.Files.size(f.path())).isEqualTo(12288);
    io.lazypull.sys.Posix.pwriteFully(f.fd(), java.nio.ByteBuffer.wrap(new byte[4096]), 4096);
    assertThat(io.lazypull.sys.Posix.seekData(f.fd(), 0)).isEqualTo(4096);

    cache.anonClosed(anonOf.get(o));
    cache.requestRead(o, 0, 4096);
    cache.select();
    cache.copen(deliverReopen().msgId(), 10000);
    assertThat(io.lazypull.sys.Posix.seekData(f.fd(), 0)).as("kept").isEqualTo(4096);

    cache.anonClosed(anonOf.get(o));
    cache.restore();
    cache.select();
    cache.copen(deliverReopen().msgId(), 20000);
    assertThat(io.lazypull.sys.Posix.seekData(f.fd(), 0)).as("discarded").isEqualTo(-1);
    assertThat(java.nio.file.Files.size(f.path())).isEqualTo(20480);
    assertThat(o.size()).isEqualTo(20000);
  }
}
