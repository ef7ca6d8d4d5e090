package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code file:///DIR}: a plain directory of blobs named by hex digest. */
class LocalDirectoryBackendTest extends BlobBackendContract {
  @TempDir static Path dir;
  static BlobBackend backend;

  @BeforeAll
  static void open() throws Exception {
    backend = Backends.open(dir.toUri(), BackendOptions.defaults());
    assertThat(backend.put(big().path())).isEqualTo(big().hex());
  }

  @AfterAll
  static void close() throws Exception {
    backend.close();
  }

  @Override
  BlobBackend backend() {
    return backend;
  }

  @Override
  BlobBackend openAnother() throws java.io.IOException {
    return Backends.open(dir.toUri(), BackendOptions.defaults());
  }

  @Test
  void put_storesTheBlobUnderItsHexName_withNoTemporaryFileLeft() throws Exception {
    assertThat(dir.resolve(big().hex())).exists();
    assertThat(Files.mismatch(dir.resolve(big().hex()), big().path())).isEqualTo(-1);
    try (var s = Files.list(dir)) {
      assertThat(s.map(p -> p.getFileName().toString())).allMatch(Digests::isHex);
    }
  }

  @Test
  void open_plainPath_meansAFileUri() throws Exception {
    try (BlobBackend b = Backends.open(dir.toString(), BackendOptions.defaults())) {
      assertThat(b.describe()).isEqualTo("file://" + dir);
      assertThat(b.size(big().hex())).isEqualTo(TestBlobs.BIG_SIZE);
    }
  }
}
