package io.lazypull.erofs.oci;

import io.lazypull.backend.BackendException;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Manifest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.function.LongConsumer;

/** An image in a registry or an OCI layout, read through a {@link BlobBackend}. */
final class BackendSource implements ImageSource {
  private final BlobBackend backend;
  private final String reference;
  private final String description;
  private final String name;
  private final String tag;

  /**
   * @param reference a tag or digest as the backend takes it
   * @param description the source as given, without credentials
   * @param name the repository path (registries) or null
   * @param tag the tag, or null
   */
  BackendSource(BlobBackend backend, String reference, String description, String name, String tag) {
    this.backend = backend;
    this.reference = reference;
    this.description = description;
    this.name = name;
    this.tag = tag;
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public Manifest top() throws IOException {
    return backend.manifest(reference);
  }

  @Override
  public Manifest manifest(Descriptor d) throws IOException {
    Manifest m = backend.manifest(d.digest());
    if (m.size() != d.size()) {
      throw new BadManifestException("manifest " + d.digest() + " has " + m.size()
          + " bytes, its descriptor says " + d.size());
    }
    return m;
  }

  @Override
  public void fetch(Descriptor blob, Path target, LongConsumer progress) throws IOException {
    Path tmp = Files.createTempFile(target.toAbsolutePath().getParent(), ".fetch-", ".part");
    try {
      long n;
      try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
        n = backend.transferTo(blob.digest(), new Counting(out, progress));
      }
      if (n != blob.size()) {
        throw new BadManifestException("blob " + blob.digest() + " has " + n
            + " bytes, the manifest says " + blob.size());
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (BackendException e) {
      if (e.isNotFound()) {
        throw new BackendException(e.kind(), e.backend(), "fetch", blob.hex(), e.status(),
            "the image references a blob the source does not have", e);
      }
      throw e;
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public String tag() {
    return tag;
  }

  @Override
  public void close() throws IOException {
    backend.close();
  }

  /** Passes writes through and reports their size. */
  static final class Counting implements WritableByteChannel {
    private final WritableByteChannel out;
    private final LongConsumer progress;

    Counting(WritableByteChannel out, LongConsumer progress) {
      this.out = out;
      this.progress = progress;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = out.write(src);
      progress.accept(n);
      return n;
    }

    @Override
    public boolean isOpen() {
      return out.isOpen();
    }

    @Override
    public void close() throws IOException {
      out.close();
    }
  }
}
