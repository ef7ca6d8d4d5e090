package io.lazypull.cli;

import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Writes a blob, or a range of it, to stdout (or a file). A whole blob is checked against its
 * digest; with {@code -o} nothing is written unless it matches.
 */
@Command(name = "fetch", mixinStandardHelpOptions = true,
    description = {"Write a blob, or a range of it, from a backend to stdout (or a file).",
        "A whole blob is verified against its digest: with -o FILE the file",
        "appears only if it matches; on stdout the bytes are out before a",
        "mismatch can be found (then the exit code is 1)."})
final class FetchCommand implements Callable<Integer> {
  private static final int BUFFER = 1 << 20;
  private static final long MAX_VERIFIED_RANGE = 256L << 20;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;
  @Mixin BackendArgs backend;

  @Parameters(index = "0", paramLabel = "DIGEST", converter = BackendArgs.DigestConverter.class,
      description = "The blob: sha256:HEX or HEX.")
  String hex;

  @Option(names = "--offset", paramLabel = "BYTES", defaultValue = "0",
      converter = BackendArgs.SizeConverter.class, description = "First byte (default: 0).")
  long offset;

  @Option(names = "--length", paramLabel = "BYTES", converter = BackendArgs.SizeConverter.class,
      description = "Bytes to write; fewer when the blob ends first (default: to the end).")
  Long length;

  @Option(names = "--chunk-sha256", paramLabel = "DIGEST",
      converter = BackendArgs.DigestConverter.class,
      description = "The sha256 the range must have; nothing is written if it does not (needs --length, at most 256M).")
  String chunkSha256;

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
    try (BlobBackend b = backend.open(spec.commandLine())) {
      if (whole && chunkSha256 == null) {
        if (output != null) {
          b.download(hex, output);
        } else {
          PrintStream out = System.out;
          b.transferTo(hex, new StreamChannel(out));
          flush(out);
        }
        return 0;
      }
      if (output != null) {
        Path abs = output.toAbsolutePath();
        Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName() + ".", ".part");
        try {
          try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            writeRange(b, ch);
            ch.force(true);
          }
          Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
          Files.deleteIfExists(tmp);
        }
      } else {
        writeRange(b, new StreamChannel(System.out));
        flush(System.out);
      }
      return 0;
    }
  }

  private void writeRange(BlobBackend b, WritableByteChannel out) throws IOException {
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
      int n = b.read(hex, pos, buf);
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
