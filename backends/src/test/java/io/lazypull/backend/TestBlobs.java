package io.lazypull.backend;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

/**
 * Deterministic pseudo-random blobs on disk. The 256 MiB one is generated once per checkout
 * (target/test-blobs) and reused by every test class; expected bytes are read back from the
 * file, never held in the heap.
 */
final class TestBlobs {
  static final long BIG_SIZE = 256L << 20;
  private static final Path DIR = Path.of("target", "test-blobs").toAbsolutePath();
  private static Blob big;

  private TestBlobs() {}

  /** A blob file with its sha256 hex and size. */
  record Blob(Path path, String hex, long size) {
    /** Bytes [offset, offset + length) of the blob, clipped at its end. */
    byte[] bytes(long offset, int length) {
      int n = (int) Math.max(0, Math.min(length, size - offset));
      ByteBuffer buf = ByteBuffer.allocate(n);
      try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
        while (buf.hasRemaining() && ch.read(buf, offset + buf.position()) >= 0) {
          // keep reading
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return buf.array();
    }

    String digest() {
      return "sha256:" + hex;
    }
  }

  /** The shared 256 MiB blob. */
  static synchronized Blob big() {
    if (big == null) {
      try {
        big = cached("big-256MiB", BIG_SIZE, 0x1a2b3c4dL);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return big;
  }

  /** A blob of {@code size} bytes from {@code seed}, cached under target/test-blobs. */
  static Blob cached(String name, long size, long seed) throws IOException {
    Files.createDirectories(DIR);
    Path file = DIR.resolve(name + ".bin");
    Path sum = DIR.resolve(name + ".sha256");
    if (Files.isRegularFile(file) && Files.size(file) == size && Files.isRegularFile(sum)) {
      String hex = Files.readString(sum, StandardCharsets.US_ASCII).trim();
      if (Digests.isHex(hex)) {
        return new Blob(file, hex, size);
      }
    }
    Path tmp = Files.createTempFile(DIR, name, ".tmp");
    generate(tmp, size, seed);
    String hex = Digests.sha256Hex(tmp);
    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    Files.writeString(sum, hex + "\n", StandardCharsets.US_ASCII);
    return new Blob(file, hex, size);
  }

  /** A fresh blob file in {@code dir}. */
  static Blob create(Path dir, String name, long size, long seed) throws IOException {
    Path file = dir.resolve(name);
    generate(file, size, seed);
    return new Blob(file, Digests.sha256Hex(file), size);
  }

  static void generate(Path file, long size, long seed) throws IOException {
    SplittableRandom rnd = new SplittableRandom(seed);
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE,
        StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
      long left = size;
      while (left > 0) {
        buf.clear();
        while (buf.remaining() >= 8) {
          buf.putLong(rnd.nextLong());
        }
        buf.flip();
        if (buf.remaining() > left) {
          buf.limit((int) left);
        }
        left -= buf.remaining();
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
    }
  }
}
