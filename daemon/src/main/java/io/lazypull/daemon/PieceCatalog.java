package io.lazypull.daemon;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Piece digests of data blobs, learned from verified meta blobs and kept in the state
 * directory, so that a daemon started after a crash verifies ranges of blobs whose meta blob
 * it never fetched itself (the kernel had it cached).
 */
final class PieceCatalog {
  private static final Logger log = LoggerFactory.getLogger(PieceCatalog.class);

  private final Path dir;
  private final Map<String, Optional<PieceIndex>> known = new ConcurrentHashMap<>();

  PieceCatalog(Path stateDir) throws IOException {
    this.dir = Files.createDirectories(stateDir.resolve("pieces"));
  }

  /** The piece digests of {@code digest}, if any meta blob told us. */
  Optional<PieceIndex> get(String digest) {
    return known.computeIfAbsent(digest, this::load);
  }

  /** Records (and persists) the piece digests of {@code digest}. */
  void put(String digest, PieceIndex index) throws IOException {
    Optional<PieceIndex> old = get(digest);
    if (old.isPresent() && old.get().blobSize() == index.blobSize()
        && java.util.Arrays.equals(old.get().toBytes(), index.toBytes())) {
      return;
    }
    Path tmp = Files.createTempFile(dir, digest, ".tmp");
    try {
      Files.write(tmp, index.toBytes());
      Files.move(tmp, dir.resolve(digest), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(tmp);
    }
    known.put(digest, Optional.of(index));
    log.debug("piece index for {}: {}", digest, index);
  }

  private Optional<PieceIndex> load(String digest) {
    Path f = dir.resolve(digest);
    if (!Files.exists(f)) {
      return Optional.empty();
    }
    try (InputStream in = Files.newInputStream(f)) {
      return Optional.of(PieceIndex.fromBytes(in));
    } catch (IOException e) {
      log.warn("ignoring unreadable piece index {}: {}", f, e.getMessage());
      return Optional.empty();
    }
  }
}
