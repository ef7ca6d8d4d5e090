package io.lazypull.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code file:///DIR} where DIR is an OCI image layout: blobs in DIR/blobs/sha256/HEX. */
class OciLayoutBackendTest extends BlobBackendContract {
  @TempDir static Path dir;
  static BlobBackend backend;

  @BeforeAll
  static void open() throws Exception {
    Files.writeString(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    Files.writeString(dir.resolve("index.json"), "{\"schemaVersion\":2,\"manifests\":[]}");
    backend = Backends.open("file://" + dir, BackendOptions.defaults());
    backend.put(big().path());
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
    return Backends.open("file://" + dir, BackendOptions.defaults());
  }

  @Test
  void put_writesIntoBlobsSha256() {
    assertThat(dir.resolve("blobs/sha256/" + big().hex())).exists();
    assertThat(dir.resolve(big().hex())).doesNotExist();
  }
}
