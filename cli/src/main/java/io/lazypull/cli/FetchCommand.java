package io.lazypull.cli;

import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import io.lazypull.erofs.BlobIndex;
import io.lazypull.erofs.CorruptImageException;
import io.lazypull.erofs.ImageSource;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Writes a blob, or a range of it, to stdout (or a file). Nothing unverified is written where
 * it can be verified: a whole blob is checked against its digest before any byte of it is
 * written; with {@code --image} every piece is checked against the image's blob index.
 */
@Command(name = "fetch", mixinStandardHelpOptions = true,
    description = {"Write a blob, or a range of it, from a backend to stdout (or a file).",
        "",
        "A whole blob is verified against its digest before a byte of it is written:",
        "with -o FILE it is downloaded beside FILE and renamed over it once it matches;",
        "on stdout it is downloaded into a temporary file in $TMPDIR (default /tmp; the",
        "blob's size must fit there) and copied out only once it matches. On a mismatch",
        "nothing is written, the exit code is 1.",
        "",
        "A range (--offset, --length) is verified when its digest is known: --chunk-sha256",
        "for the range as a whole, or --image FSID, the image whose meta blob (fetched from",
        "the same backend, checked against FSID) carries the blob's piece digests: then",
        "each piece is fetched whole and checked before its bytes are written, a whole",
        "blob streams without a temporary file, and a mismatch stops with exit code 1.",
        "Without either a range is written as the backend returns it."})
final class FetchCommand implements Callable<Integer> {
  private static final int BUFFER = 1 << 20;
  private static final long MAX_VERIFIED_RANGE = 256L << 20;
  private static final long MAX_META_BLOB = 256L << 20;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;
  @Mixin BackendArgs backend;

  @Parameters(index = "0", paramLabel = "DIGEST", converter = BackendArgs.DigestConverter.class,
      description = "The blob: sha256:HEX or HEX.")
  String hex;

  @Option(names = "--offset", paramLabel = "BYTES", defaultValue = "0",
      converter = ByteSizes.class, description = "First byte (default: 0).")
  long offset;

  @Option(names = "--length", paramLabel = "BYTES", converter = ByteSizes.class,
      description = "Bytes to write; fewer when the blob ends first (default: to the end).")
  Long length;

  @Option(names = "--chunk-sha256", paramLabel = "DIGEST",
      converter = BackendArgs.DigestConverter.class,
      description = "The sha256 the range must have; nothing is written if it does not (needs --length, at most 256M).")
  String chunkSha256;

  @Option(names = "--image", paramLabel = "FSID", converter = BackendArgs.DigestConverter.class,
      description = "Check every piece against the blob index of this image (a data blob of it).")
  String image;

  @Option(names = {"-o", "--output"}, paramLabel = "FILE",
      description = "Write to FILE (atomically, after verification) instead of stdout.")
  Path output;

  @Override
  public Integer call() throws IOException {
    boolean whole = offset == 0 && length == null;
    if (chunkSha256 != null && (length == null || length > MAX_VERIFIED_RANGE)) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--chunk-sha256 needs --length of at most 256M");
    }
    if (chunkSha256 != null && image != null) {
      throw new CommandLine.ParameterException(spec.commandLine(), "give --chunk-sha256 or --image, not both");
    }
    try (BlobBackend b = backend.open(spec.commandLine())) {
      ImageSource pieces = image == null ? null : verifiedBlob(b);
      if (whole && chunkSha256 == null && pieces == null) {
        if (output != null) {
          b.download(hex, output);
        } else {
          copyVerifiedToStdout(b);
        }
        return 0;
      }
      if (output != null) {
        Path abs = output.toAbsolutePath();
        Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName() + ".", ".part");
        try {
          try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            writeRange(b, pieces, ch);
            ch.force(true);
          }
          Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
          Files.deleteIfExists(tmp);
        }
      } else {
        writeRange(b, pieces, new StreamChannel(System.out));
        flush(System.out);
      }
      return 0;
    }
  }

  /** A whole blob: downloaded into $TMPDIR and checked against its digest, then copied out. */
  private void copyVerifiedToStdout(BlobBackend b) throws IOException {
    String dir = System.getenv("TMPDIR");
    Path tmpDir = Path.of(dir == null || dir.isEmpty() ? System.getProperty("java.io.tmpdir") : dir);
    Path tmp = Files.createTempFile(tmpDir, ".lazypull-fetch-", ".part");
    try {
      b.download(hex, tmp);
      Files.copy(tmp, System.out);
      flush(System.out);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /**
   * The blob read through the piece digests of image {@link #image}: its meta blob is fetched
   * whole into memory and checked against the fsid first.
   */
  private ImageSource verifiedBlob(BlobBackend b) throws IOException {
    long size = b.size(image);
    if (size > MAX_META_BLOB) {
      throw new IOException("--image " + image + ": a meta blob of " + size + " bytes is more than 256M");
    }
    ByteArrayOutputStream meta = new ByteArrayOutputStream((int) size);
    b.transferTo(image, Channels.newChannel(meta)); // throws if it does not match its name
    try (ImageSource metaSource = ImageSource.of(meta.toByteArray())) {
      Optional<List<BlobIndex.Blob>> index;
      try {
        index = BlobIndex.read(metaSource);
      } catch (CorruptImageException e) {
        throw new IOException("--image " + image + ": not a lazypull meta blob: " + e.getMessage(), e);
      }
      for (BlobIndex.Blob blob : index.orElse(List.of())) {
        if (blob.tag().equals(hex)) {
          return blob.verified(new BackendSource(b, hex, b.size(hex)));
        }
      }
    }
    throw new IOException("--image " + image + ": sha256:" + hex + " is not in its blob index"
        + " (not one of its data blobs)");
  }

  private void writeRange(BlobBackend b, ImageSource pieces, WritableByteChannel out) throws IOException {
    if (chunkSha256 != null) {
      ByteBuffer buf = ByteBuffer.allocate((int) (long) length);
      int n = b.read(hex, offset, buf, chunkSha256);
      if (n < 0) {
        throw pastEnd(b);
      }
      buf.flip();
      writeAll(out, buf);
      return;
    }
    ByteBuffer buf = ByteBuffer.allocate(BUFFER);
    long pos = offset;
    long left = length == null ? Long.MAX_VALUE : length;
    boolean first = true;
    while (left > 0) {
      buf.clear();
      if (left < buf.capacity()) {
        buf.limit((int) left);
      }
      int want = buf.remaining();
      int n = pieces == null ? b.read(hex, pos, buf) : readVerified(pieces, pos, buf);
      if (n < 0) {
        if (first) {
          throw pastEnd(b);
        }
        break;
      }
      first = false;
      buf.flip();
      writeAll(out, buf);
      pos += n;
      left -= n;
      if (n < want) {
        break; // reads are short only at the end of the blob
      }
    }
  }

  /** Like {@link BlobBackend#read}, through the verified pieces. */
  private static int readVerified(ImageSource pieces, long pos, ByteBuffer dst) throws IOException {
    long size = pieces.size();
    if (pos >= size) {
      return -1;
    }
    int n = (int) Math.min(dst.remaining(), size - pos);
    ByteBuffer part = dst.slice().limit(n);
    pieces.read(pos, part);
    dst.position(dst.position() + n);
    return n;
  }

  private IOException pastEnd(BlobBackend b) throws IOException {
    return new IOException(b.describe() + ": offset " + offset + " is at or past the end of "
        + Digests.SHA256_PREFIX + hex + " (" + b.size(hex) + " bytes)");
  }

  private static void writeAll(WritableByteChannel out, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      out.write(buf);
    }
  }

  private static void flush(PrintStream out) throws IOException {
    out.flush();
    if (out.checkError()) {
      throw new IOException("stdout: write failed (closed pipe or full disk?)");
    }
  }

  /** A blob in a backend as an image source (reads are short only at its end). */
  private record BackendSource(BlobBackend backend, String hex, long size) implements ImageSource {
    @Override
    public void read(long pos, ByteBuffer dst) throws IOException {
      while (dst.hasRemaining()) {
        int n = backend.read(hex, pos, dst);
        if (n <= 0) {
          throw new EOFException(backend.describe() + ": sha256:" + hex + " ends at " + pos);
        }
        pos += n;
      }
    }

    @Override
    public String toString() {
      return backend.describe() + " sha256:" + hex;
    }
  }

  /** A channel over a PrintStream that writes whole buffers (no per-call 8 KiB copies). */
  static final class StreamChannel implements WritableByteChannel {
    private final PrintStream out;
    private final byte[] copy = new byte[BUFFER];

    StreamChannel(PrintStream out) {
      this.out = out;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = src.remaining();
      if (src.hasArray()) {
        out.write(src.array(), src.arrayOffset() + src.position(), n);
        src.position(src.limit());
      } else {
        while (src.hasRemaining()) {
          int k = Math.min(copy.length, src.remaining());
          src.get(copy, 0, k);
          out.write(copy, 0, k);
        }
      }
      if (out.checkError()) {
        throw new IOException("stdout: write failed (closed pipe or full disk?)");
      }
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }
}
