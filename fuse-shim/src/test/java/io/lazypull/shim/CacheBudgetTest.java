package io.lazypull.shim;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.shim.ondemand.CacheStore;
import io.lazypull.shim.ondemand.OndemandCache;
import io.lazypull.shim.ondemand.StoreFile;
import io.lazypull.sys.Posix;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The budget on a real sparse cache file (8 windows of 1 MiB, 4 of them cached):
 *
 * <pre>
 *   window   0    1    2    3    4 .. 7
 *   data     X    X    X    X    (holes)
 * </pre>
 */
class CacheBudgetTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;
  CacheStore store;
  OndemandCache cache;
  StoreFile file;

  @BeforeEach
  void fourWindowsCached() throws Exception {
    store = new CacheStore(tmp.resolve("cache"));
    cache = new OndemandCache(store, () -> {});
    file = store.file("erofs,d", "blob");
    store.prepare(file, 8L * MIB);
    for (int w = 0; w < 4; w++) {
      write(w);
    }
  }

  @AfterEach
  void close() {
    store.close();
  }

  private void write(int window) throws Exception {
    ByteBuffer b = ByteBuffer.allocateDirect(MIB);
    while (b.hasRemaining()) {
      b.put((byte) (window + 1));
    }
    Posix.pwriteFully(file.fd(), b.flip(), (long) window * MIB);
  }

  private CacheBudget budget(long limit) {
    return new CacheBudget(store, cache, new CacheBudget.Config(limit, MIB, Duration.ZERO, Duration.ofMinutes(10),
        Duration.ofMillis(100)));
  }

  private boolean cached(int window) throws Exception {
    return Posix.seekHole(file.fd(), (long) window * MIB) >= (long) (window + 1) * MIB;
  }

  @Test
  void accounting_isWhatSeekDataFinds() throws Exception {
    CacheBudget b = budget(0);
    b.pass(false);
    assertThat(b.usedBytes()).isEqualTo(4L * MIB).isEqualTo(CacheBudget.measure(store.root()));
    assertThat(b.blobs()).singleElement().satisfies(u -> {
      assertThat(u.size()).isEqualTo(8L * MIB);
      assertThat(u.cachedBytes()).isEqualTo(4L * MIB);
    });
  }

  @Test
  void overTheBound_theLeastRecentlyUsedWindowGoes_andBecomesAHole() throws Exception {
    CacheBudget b = budget(3L * MIB);
    b.pass(false); // 4 MiB > 3 MiB: one window goes
    assertThat(b.usedBytes()).isEqualTo(3L * MIB);
    assertThat(b.stats().evictedWindows()).isEqualTo(1);
    // All four had the file's mtime as their last use; now read windows 1 and 2 (and 3).
    for (int w = 1; w <= 3; w++) {
      b.pin(file.path(), (long) w * MIB, MIB);
      b.unpin(file.path(), (long) w * MIB, MIB);
    }
    write(0); // fetched again, by a READ nobody pinned it for (as a window fetched ahead)
    b.settle(file, 0); // measures it, and evicts down to the bound at once
    assertThat(b.stats().refetchedWindows()).isEqualTo(1);
    assertThat(b.usedBytes()).isEqualTo(3L * MIB);
    assertThat(b.stats().evictedWindows()).isEqualTo(2);
    b.pass(false);
    assertThat(b.stats().evictedWindows()).as("nothing more to evict").isEqualTo(2);
    assertThat(cached(0)).as("window 0: used longest ago").isFalse();
    assertThat(cached(1) && cached(2) && cached(3)).isTrue();
    assertThat(b.usedBytes()).isEqualTo(CacheBudget.measure(store.root()));
  }

  @Test
  void aPinnedWindow_isNeverEvicted_evenOverTheBound() throws Exception {
    CacheBudget b = budget(4L * MIB);
    for (int w = 0; w < 4; w++) {
      b.pin(file.path(), (long) w * MIB, MIB); // four readers between their check and their use
    }
    // A READ of window 5 needs room: nothing may go, so it waits out the throttle and goes over.
    long reserved = b.reserve(file, 5L * MIB, 4096);
    assertThat(reserved).isEqualTo(MIB);
    assertThat(b.stats().overBound()).isEqualTo(1);
    for (int w = 0; w < 4; w++) {
      assertThat(cached(w)).as("pinned window %s", w).isTrue();
    }
    b.settle(file, reserved);
    b.unpin(file.path(), 2L * MIB, MIB);
    assertThat(b.reserve(file, 5L * MIB, 4096)).isEqualTo(MIB);
    assertThat(cached(2)).as("the one unpinned window made room").isFalse();
    assertThat(b.stats().overBound()).isEqualTo(1);
  }

  @Test
  void aWindowUsedWithinTheGuard_isNotEvicted() throws Exception {
    CacheBudget b = new CacheBudget(store, cache, new CacheBudget.Config(3L * MIB, MIB, Duration.ofMinutes(1),
        Duration.ofMinutes(10), Duration.ofMillis(100)));
    for (int w = 0; w < 4; w++) {
      b.pin(file.path(), (long) w * MIB, MIB);
      b.unpin(file.path(), (long) w * MIB, MIB);
    }
    b.pass(false);
    assertThat(b.usedBytes()).isEqualTo(4L * MIB);
    assertThat(b.stats().evictedWindows()).isZero();
  }

  @Test
  void gc_removesABlobNothingUses() throws Exception {
    CacheBudget b = budget(0);
    b.pin(file.path(), 0, MIB);
    assertThat(b.pass(true)).as("pinned: in use").isZero();
    b.unpin(file.path(), 0, MIB);
    assertThat(b.pass(true)).isEqualTo(4L * MIB);
    assertThat(b.stats().removedBlobs()).isEqualTo(1);
    assertThat(Files.exists(file.path())).isFalse();
    assertThat(b.usedBytes()).isZero();
  }
}
