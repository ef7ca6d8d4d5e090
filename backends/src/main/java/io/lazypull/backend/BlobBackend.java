package io.lazypull.backend;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A content-addressed store of immutable blobs, each named by the sha256 of its bytes.
 *
 * <p>Digests are passed as 64 lowercase hex characters or as {@code sha256:<hex>}; anything
 * else is an {@link IllegalArgumentException}. Failures are {@link BackendException}s whose
 * {@link BackendException#kind() kind} tells "not found" from "temporarily failing" (already
 * retried) from "permanently failing".
 *
 * <p>Open one with {@link Backends#open}. Implementations are thread-safe; one instance is
 * meant to be shared by every thread that reads from the same place.
 */
public interface BlobBackend extends Closeable {
  /** Where the blobs live, as a URI without credentials, for logs and messages. */
  String describe();

  /**
   * The size of a blob in bytes.
   *
   * @throws BackendException NOT_FOUND if there is no such blob
   */
  long size(String digest) throws IOException;

  /**
   * Reads bytes {@code [offset, offset + dst.remaining())} of a blob into {@code dst}, from its
   * position on. The read is short only at the end of the blob.
   *
   * <ul>
   *   <li>Returns the number of bytes read and advances {@code dst}'s position by as much.
   *   <li>Returns 0 at once, without asking the backend, when {@code dst} has no room.
   *   <li>Returns -1 when {@code offset} is at or past the end of the blob (and {@code dst} has
   *       room), as {@link FileChannel#read(ByteBuffer, long)} does.
   * </ul>
   *
   * On failure {@code dst}'s position may have advanced over bytes that were read before it.
   *
   * @throws BackendException NOT_FOUND if there is no such blob
   * @throws IllegalArgumentException if the digest is malformed or the offset negative
   */
  int read(String digest, long offset, ByteBuffer dst) throws IOException;

  /**
   * Like {@link #read(String, long, ByteBuffer)}, and the bytes read must have the sha256
   * {@code expectedSha256} (a chunk digest the caller knows). Bytes that do not match are never
   * handed out: the range of {@code dst} is zeroed, its position left where it was, and a
   * PERMANENT {@link BackendException} ("sha256 mismatch for sha256:&lt;hex&gt; [a,b)") thrown.
   */
  default int read(String digest, long offset, ByteBuffer dst, String expectedSha256)
      throws IOException {
    String hex = Digests.normalize(digest);
    String expected = Digests.normalize(expectedSha256);
    int start = dst.position();
    int n = read(hex, offset, dst);
    Verification.checkRange(describe(), hex, offset, dst, start, n, expected);
    return n;
  }

  /**
   * Writes bytes {@code [offset, offset + length)} of a blob into {@code target}, in order, as
   * one request where the backend makes requests (a retry resumes where an attempt broke off).
   * The bytes are not verified: the caller checks them (it knows the range's digests). Throws
   * rather than writing fewer than {@code length} bytes, also when the blob ends before.
   *
   * @throws BackendException NOT_FOUND if there is no such blob
   * @throws IllegalArgumentException if the digest is malformed or the range negative
   */
  void transferRange(String digest, long offset, long length, WritableByteChannel target) throws IOException;

  /** Whether each request crosses a network (a round trip): then ask for ranges in few requests. */
  boolean remote();

  /**
   * Makes what requests need (an S3 client: most of the AWS SDK loaded and set up, ~16 MiB of
   * a process's peak RSS) now rather than at the first request. Opening a backend only checks
   * its URI, so that a process that just checks one ('up') pays nothing; a daemon connects at
   * start, so that a standby takes over ready. S3 also sends one request in the background whose
   * answer does not matter, which sets up the rest of a request's path: a standby's take-over
   * from S3Proxy stalled readers 169-176 ms with it, 317-345 ms without.
   */
  default void connect() throws IOException {}

  /**
   * Streams a whole blob into {@code target} and checks it against its name: when the bytes
   * do not hash to {@code digest} a PERMANENT {@link BackendException} is thrown after they
   * have been written, so the caller must throw them away. Use {@link #download} when nothing
   * may see the bytes before they are verified.
   *
   * @return the number of bytes written
   */
  long transferTo(String digest, WritableByteChannel target) throws IOException;

  /**
   * Downloads a whole blob into {@code file}: written to a temporary file beside it, verified
   * against the digest, then renamed over {@code file}. On failure {@code file} is untouched.
   *
   * @return the blob's size
   */
  default long download(String digest, Path file) throws IOException {
    Path abs = file.toAbsolutePath();
    Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName() + ".", ".part");
    try {
      long n;
      try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        n = transferTo(digest, out);
        out.force(true);
      }
      Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      return n;
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /**
   * Stores a file as the blob named by its sha256 and returns that hex. Does nothing (beyond
   * hashing the file and one existence check) when the blob is already there.
   *
   * @throws BackendException PERMANENT if the backend is read-only
   */
  String put(Path file) throws IOException;

  /**
   * An image manifest or index by reference, its bytes checked: by digest they hash to it; by
   * tag they hash to what the registry announced or the tag's descriptor names. References:
   *
   * <ul>
   *   <li>{@code sha256:<hex>}: a digest, on every backend;
   *   <li>registries: a tag of the URI's repository ({@code latest});
   *   <li>S3 and blob directories: {@code NAME:TAG}, kept in the object {@code refs/NAME:TAG}
   *       (an OCI descriptor, JSON) next to the blobs (docs/containers.md);
   *   <li>OCI layouts: an {@code org.opencontainers.image.ref.name} of {@code index.json}.
   * </ul>
   *
   * @throws BackendException NOT_FOUND if there is no such manifest or tag; PERMANENT for bytes
   *     that do not match, or more than {@link Manifest#MAX_SIZE}
   * @throws IllegalArgumentException for a malformed reference
   */
  default Manifest manifest(String reference) throws IOException {
    throw new UnsupportedOperationException(describe() + " holds no manifests");
  }

  /**
   * Stores a manifest under a tag or under its own digest ({@code sha256:<hex>}). Manifests
   * and blobs it references must be stored first (registries refuse it otherwise). Without a
   * manifests API the manifest is stored as a blob and the tag as {@code refs/NAME:TAG}.
   *
   * @throws BackendException PERMANENT if the backend refuses it (the registry's error code is
   *     in the message), or cannot hold tags (an OCI layout, a single file)
   */
  default void putManifest(String reference, Manifest manifest) throws IOException {
    throw new UnsupportedOperationException(describe() + " holds no manifests");
  }

  /** Counters since this backend was opened. */
  default BackendStats stats() {
    return BackendStats.ZERO;
  }
}
