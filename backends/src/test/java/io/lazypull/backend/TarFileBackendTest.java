package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendException.Kind;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.time.Instant;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code file:///PATH/layer.tar}: one file, served as the blob named by its own sha256 (the
 * big test blob stands in for a tar layer: the backend never looks inside).
 */
class TarFileBackendTest extends BlobBackendContract {
  static BlobBackend backend;

  @BeforeAll
  static void open() throws Exception {
    backend = Backends.open(big().path().toUri(), BackendOptions.defaults());
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
    return Backends.open(big().path().toUri(), BackendOptions.defaults());
  }

  @Override
  @Test
  void put_smallBlob_thenReadItBack_andPutAgainIsANoOp() throws Exception {
    Path f = TestBlobs.create(tmp, "small.bin", 1000, 1).path();
    assertThatThrownBy(() -> backend.put(f)).isInstanceOfSatisfying(BackendException.class,
        e -> {
          assertThat(e.kind()).isEqualTo(Kind.PERMANENT);
          assertThat(e.getMessage()).contains("read-only");
        });
  }

  @Override
  @Test
  void put_emptyBlob_hasSizeZeroAndNoBytes() throws Exception {
    Path empty = Files.createFile(tmp.resolve("layer.tar"));
    try (BlobBackend b = Backends.open(empty.toUri(), BackendOptions.defaults())) {
      String hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
      assertThat(b.size(hex)).isZero();
      assertThat(b.read(hex, 0, ByteBuffer.allocate(4))).isEqualTo(-1);
    }
  }

  @Test
  void digest_isCachedInAnXattr_andRecomputedWhenTheFileChanges() throws Exception {
    Path layer = TestBlobs.create(tmp, "layer.tar", 100_000, 7).path();
    String first = LocalStore.cachedSha256(layer);
    UserDefinedFileAttributeView view =
        Files.getFileAttributeView(layer, UserDefinedFileAttributeView.class);
    if (!view.list().contains(LocalStore.XATTR)) {
      System.err.println("NOTE TarFileBackendTest: no user xattrs on " + layer.getFileSystem()
          + " (" + Files.getFileStore(layer).type() + "): the digest is cached in memory only");
    } else {
      ByteBuffer buf = ByteBuffer.allocate(view.size(LocalStore.XATTR));
      view.read(LocalStore.XATTR, buf);
      assertThat(new String(buf.array(), StandardCharsets.US_ASCII)).startsWith("v1 100000 ")
          .endsWith(" " + first);
    }
    // Same size, new content and mtime: the cached digest must not be trusted.
    TestBlobs.generate(layer, 100_000, 8);
    Files.setLastModifiedTime(layer, FileTime.from(Instant.now().plusSeconds(5)));
    String second = LocalStore.cachedSha256(layer);
    assertThat(second).isNotEqualTo(first).isEqualTo(Digests.sha256Hex(layer));
    try (BlobBackend b = Backends.open(layer.toUri(), BackendOptions.defaults())) {
      assertThat(b.size(second)).isEqualTo(100_000);
      assertThatThrownBy(() -> b.size(first)).isInstanceOfSatisfying(BackendException.class,
          e -> assertThat(e.kind()).isEqualTo(Kind.NOT_FOUND));
    }
  }

  @Test
  void open_missingPath_failsClearly() {
    assertThatThrownBy(() -> Backends.open(tmp.resolve("nope").toUri(), BackendOptions.defaults()))
        .isInstanceOf(BackendException.class).hasMessageContaining("no such directory or file");
  }
}
