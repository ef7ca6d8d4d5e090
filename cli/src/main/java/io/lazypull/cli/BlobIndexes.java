package io.lazypull.cli;

import io.lazypull.daemon.BlobIndexReader;
import io.lazypull.daemon.PieceIndex;
import io.lazypull.erofs.BlobIndex;
import io.lazypull.erofs.ImageSource;
import java.io.ByteArrayOutputStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Wires erofs-tools' blob index (a meta blob's trailer) into the daemon's verification. */
final class BlobIndexes {
  private BlobIndexes() {}

  static final BlobIndexReader READER = blob -> {
    Optional<List<BlobIndex.Blob>> index;
    try (ImageSource src = ImageSource.of(blob)) {
      index = BlobIndex.read(src);
    }
    Map<String, PieceIndex> out = new LinkedHashMap<>();
    for (BlobIndex.Blob b : index.orElse(List.of())) {
      ByteArrayOutputStream digests = new ByteArrayOutputStream(b.digests().size() * 32);
      b.digests().forEach(digests::writeBytes);
      out.put(b.tag(), new PieceIndex(b.blobSize(), b.pieceSize(), digests.toByteArray()));
    }
    return out;
  };
}
