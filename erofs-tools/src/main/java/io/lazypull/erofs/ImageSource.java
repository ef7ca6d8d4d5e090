package io.lazypull.erofs;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Random-access bytes an image or a blob is read from: a file, a byte array, or anything a
 * backend can serve ranges of. The file and byte-array sources here allow concurrent reads;
 * other implementations say whether they do.
 */
public interface ImageSource extends Closeable {
  /** Total length in bytes. */
  long size() throws IOException;

  /**
   * Reads exactly {@code dst.remaining()} bytes at {@code pos} into {@code dst}.
   *
   * @throws EOFException if the range goes past {@link #size()}
   */
  void read(long pos, ByteBuffer dst) throws IOException;

  @Override
  default void close() throws IOException {}

  /** A file, opened read-only until {@link #close()}. */
  static ImageSource of(Path file) throws IOException {
    FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
    return new ImageSource() {
      @Override
      public long size() throws IOException {
        return ch.size();
      }

      @Override
      public void read(long pos, ByteBuffer dst) throws IOException {
        while (dst.hasRemaining()) {
          int n = ch.read(dst, pos);
          if (n < 0) {
            throw new EOFException(file + ": read past the end at byte " + pos);
          }
          pos += n;
        }
      }

      @Override
      public void close() throws IOException {
        ch.close();
      }

      @Override
      public String toString() {
        return file.toString();
      }
    };
  }

  /** Bytes in memory (tests, small meta blobs). */
  static ImageSource of(byte[] bytes) {
    return new ImageSource() {
      @Override
      public long size() {
        return bytes.length;
      }

      @Override
      public void read(long pos, ByteBuffer dst) throws IOException {
        if (pos < 0 || pos > bytes.length || dst.remaining() > bytes.length - pos) {
          throw new EOFException("read of " + dst.remaining() + " bytes at " + pos
              + " past the end (" + bytes.length + " bytes)");
        }
        dst.put(bytes, (int) pos, dst.remaining());
      }
    };
  }
}
