package io.lazypull.daemon;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Reads the piece digests of data blobs out of a verified blob, keyed by data blob digest. The
 * cli wires erofs-tools' blob index (the trailer of a lazypull meta blob) here, so that the
 * daemon can verify every range of the data blobs a meta blob names.
 */
@FunctionalInterface
public interface BlobIndexReader {
  /** Reads nothing: ranges of big blobs are then written unverified. */
  BlobIndexReader NONE = blob -> Map.of();

  /** Digests found in {@code blob}; empty if it carries none. */
  Map<String, PieceIndex> read(Path blob) throws IOException;
}
