package io.lazypull.shim.ondemand;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.sys.Posix;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CacheStoreTest {
  @TempDir Path tmp;

  @ParameterizedTest
  @ValueSource(strings = {"erofs,dom", "sha256:0123abcdef", "a/b", ".hidden", "%", "sp ace", "\u0000nul",
      "caf\u00c3\u00a9", "..", "x%41"})
  void escape_isReversible_andGivesOneSafeName(String key) {
    String name = CacheStore.escape(key);
    assertThat(name).doesNotContain("/").isNotIn(".", "..").doesNotStartWith(".");
    assertThat(CacheStore.unescape(name)).isEqualTo(key);
  }

  @Test
  void escape_ofAVeryLongKey_isAHashThatIsNotListed() {
    String key = "\u00ff".repeat(200);
    String name = CacheStore.escape(key);
    assertThat(name).startsWith("%%").hasSize(66);
    assertThat(CacheStore.unescape(name)).isNull();
  }

  @Test
  void prepare_createsKeepsOrDiscards_andOnlySizedFilesAreListed() throws Exception {
    CacheStore store = new CacheStore(tmp.resolve("c"));
    StoreFile f = store.file("erofs,d", "b");
    assertThat(store.file("erofs,d", "b")).as("opened once").isSameAs(f);
    assertThat(store.cookies("erofs,d")).as("no size yet").isEmpty();
    assertThat(store.prepare(f, 5000)).isEqualTo(CacheStore.Coherency.CREATED);
    assertThat(Files.size(f.path())).isEqualTo(8192);
    assertThat(store.cookies("erofs,d")).containsExactly("b");
    assertThat(store.volumes()).containsExactly("erofs,d");
    Posix.pwriteFully(f.fd(), ByteBuffer.wrap(new byte[4096]), 0);
    assertThat(store.prepare(f, 5000)).isEqualTo(CacheStore.Coherency.KEPT);
    assertThat(Posix.seekData(f.fd(), 0)).isZero();
    assertThat(store.prepare(f, 5001)).isEqualTo(CacheStore.Coherency.DISCARDED);
    assertThat(Posix.seekData(f.fd(), 0)).isEqualTo(-1);
    store.close();
  }
}
