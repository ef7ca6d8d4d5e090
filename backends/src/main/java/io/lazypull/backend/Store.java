package io.lazypull.backend;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;

/**
 * One place blobs live (a directory, a bucket, a repository), seen through single attempts.
 * {@link ManagedBackend} wraps a store with everything shared: retries, timeouts, the
 * concurrency bound, counters and verification. A store does none of that; each method is one
 * attempt, and it reports failures as {@link BackendException}s of the right kind.
 *
 * <p>Digests are already normalized to bare hex. Every method gets the attempt's {@link Call}:
 * a store that can block on the network registers with it how to abort the attempt, and the
 * watchdog uses that when the attempt makes no progress for the read timeout.
 */
interface Store extends Closeable {
  /** A URI without secrets. */
  String describe();

  /** Whether attempts can hang on a network and need the watchdog. */
  boolean remote();

  /** See {@link BlobBackend#connect}. */
  default void connect() throws IOException {}

  /** The blob's size; NOT_FOUND if it does not exist. */
  long size(String hex, Call call) throws IOException;

  /**
   * Fills {@code dst} from its position with the blob's bytes from {@code offset} on, until
   * {@code dst} is full or the blob ends; returns the count, or -1 if {@code offset} is at or
   * past the end. {@code dst} has room. When an attempt fails part way, the bytes already
   * placed stay in {@code dst} (its position advanced over them), so a retry can resume.
   */
  int read(String hex, long offset, ByteBuffer dst, Call call) throws IOException;

  /**
   * Writes the blob's bytes [{@code offset}, {@code end}) into {@code out}, in one request
   * where the store makes requests; {@code end} past the blob's end (Long.MAX_VALUE: the whole
   * rest) stops at the end. Bytes written before a failure stay written; the caller resumes
   * from there. Writes nothing when {@code offset} is at or past the end.
   */
  void transferTo(String hex, long offset, long end, WritableByteChannel out, Call call) throws IOException;

  /**
   * Uploads {@code file} ({@code size} bytes, sha256 {@code hex}) as that blob. The caller has
   * checked that the blob is missing.
   */
  void put(String hex, Path file, long size, Call call) throws IOException;

  /**
   * Whether the store has a manifests API of its own (a registry). Stores without one keep
   * manifests as blobs and tags as small objects ({@link #getTag}); {@link ManagedBackend}
   * does that on top of the blob operations.
   */
  default boolean hasManifestApi() {
    return false;
  }

  /** Registries: a manifest by tag or {@code sha256:<hex>}. */
  default Manifest getManifest(String reference, Call call) throws IOException {
    throw new UnsupportedOperationException(describe() + " has no manifests API");
  }

  /** Registries: stores a manifest under a tag or its digest. */
  default void putManifest(String reference, Manifest manifest, Call call) throws IOException {
    throw new UnsupportedOperationException(describe() + " has no manifests API");
  }

  /**
   * Stores without a manifests API: the OCI descriptor (JSON) a tag points at; NOT_FOUND if
   * there is no such tag.
   */
  default byte[] getTag(String tag, Call call) throws IOException {
    throw new BackendException(BackendException.Kind.PERMANENT, describe(), "tag " + tag, null, 0,
        "this backend holds no tags", null);
  }

  /** Stores without a manifests API: points a tag at a descriptor (JSON). */
  default void putTag(String tag, byte[] descriptor, Call call) throws IOException {
    throw new BackendException(BackendException.Kind.PERMANENT, describe(), "put tag " + tag, null,
        0, "this backend cannot hold tags", null);
  }
}
