package io.lazypull.daemon;

import io.lazypull.backend.BackendException;
import io.lazypull.backend.BlobBackend;
import java.io.IOException;
import java.nio.ByteBuffer;

/** A {@link BlobSource} over a backend of the backends module (retries, limits, counters are its). */
public final class BackendBlobSource implements BlobSource {
  private final BlobBackend backend;

  public BackendBlobSource(BlobBackend backend) {
    this.backend = backend;
  }

  public BlobBackend backend() {
    return backend;
  }

  @Override
  public long size(String digest) throws IOException {
    return backend.size(digest);
  }

  @Override
  public void readFully(String digest, long offset, ByteBuffer dst) throws IOException {
    long pos = offset;
    while (dst.hasRemaining()) {
      int n = backend.read(digest, pos, dst);
      if (n < 0) {
        throw new BackendException(BackendException.Kind.PERMANENT, backend.describe(), "read", digest, 0,
            "blob ended at " + pos + ", " + dst.remaining() + " bytes short of [" + offset + ", "
                + (pos + dst.remaining()) + ")", null);
      }
      pos += n;
    }
  }

  @Override
  public void transferRange(String digest, long offset, long length, java.nio.channels.WritableByteChannel target)
      throws IOException {
    backend.transferRange(digest, offset, length, target);
  }

  @Override
  public boolean remote() {
    return backend.remote();
  }

  @Override
  public void transferTo(String digest, long size, java.nio.channels.WritableByteChannel target)
      throws IOException {
    backend.transferTo(digest, target); // one request, resumed where it broke off on a retry
  }

  @Override
  public boolean isNotFound(IOException e) {
    return e instanceof BackendException b && b.kind() == BackendException.Kind.NOT_FOUND;
  }

  @Override
  public boolean isUnavailable(IOException e) {
    return e instanceof BackendException b && b.kind() == BackendException.Kind.TRANSIENT;
  }

  @Override
  public String describe() {
    return backend.describe();
  }
}
