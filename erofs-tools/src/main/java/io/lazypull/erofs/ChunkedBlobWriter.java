package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.Map;

/**
 * Writes the data blob of a {@link Layout#CHUNKED} image: the concatenation of the distinct
 * non-zero chunks, each padded to a block, files in depth-first name order (as tar reads a
 * tree: the daemon sees one sequential stream), and fills every regular file's chunk map. Chunks
 * are deduplicated by SHA-256; all-zero chunks (and holes of the source) become holes. The
 * blob's digests (whole and per piece of {@code pieceSize}, independent of the chunk size) are
 * computed as it is written.
 */
final class ChunkedBlobWriter {
  private ChunkedBlobWriter() {}

  static PieceDigests.Result write(ImageWriter writer, int chunkSize, int pieceSize, FileChannel blob)
      throws IOException {
    int blockSize = writer.blockSize();
    int chunkBits = Integer.numberOfTrailingZeros(chunkSize);
    PieceDigests digests = new PieceDigests(pieceSize);
    Map<ByteBuffer, Long> blockOfChunk = new HashMap<>();
    MessageDigest sha = PieceDigests.sha256();
    ByteBuffer buf = ByteBuffer.allocateDirect(chunkSize);
    long blobPos = 0;
    for (InodePlan p : writer.depthFirst()) { // a walk of the tree reads the blob front to back
      TreeInode n = p.inode;
      if (!n.isRegular() || n.size == 0) {
        continue;
      }
      long count = (n.size + chunkSize - 1) >>> chunkBits;
      if (count > Integer.MAX_VALUE / 8) {
        throw new IOException(n.origin + ": too many chunks (" + count + "); use a larger chunk size");
      }
      p.chunkBits = chunkBits;
      p.chunkDevice = 1;
      p.chunkBlocks = new long[(int) count];
      try (FileContent.Reader in = n.content.open()) {
        for (int k = 0; k < count; k++) {
          int len = (int) Math.min(chunkSize, n.size - ((long) k << chunkBits));
          if (in.skipHole(len)) {
            p.chunkBlocks[k] = Erofs.NULL_ADDR;
            continue;
          }
          buf.clear().limit(len);
          in.readFully(buf, n.origin);
          buf.flip();
          if (Zeros.isAllZero(buf)) {
            p.chunkBlocks[k] = Erofs.NULL_ADDR;
            continue;
          }
          sha.update(buf.duplicate());
          ByteBuffer key = ByteBuffer.wrap(sha.digest());
          Long blk = blockOfChunk.get(key);
          if (blk == null) {
            blk = blobPos / blockSize;
            if (blk >= Erofs.NULL_ADDR) {
              throw new IOException("data blob exceeds 32-bit block addresses");
            }
            blockOfChunk.put(key, blk);
            digests.update(buf.duplicate());
            ImageWriter.writeFully(blob, buf, blobPos);
            long padded = Erofs.roundUp(len, blockSize);
            digests.updateZeros(padded - len);
            blobPos += padded;
          }
          p.chunkBlocks[k] = blk;
        }
      }
    }
    blob.truncate(blobPos);
    if (blob.size() < blobPos) {
      ImageWriter.writeFully(blob, ByteBuffer.allocate(1), blobPos - 1);
    }
    return digests.finish();
  }
}
