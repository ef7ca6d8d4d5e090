package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Builds EROFS images from a directory or a tar layer (plain, gzip or zstd; a file or a
 * stream) in one of three {@link Layout}s. Immutable; make one with {@link #builder()}.
 *
 * <p>Output is reproducible: the same input and options give the same bytes. Entries are
 * ordered by name bytes, the UUID is zero, and the superblock build time (which compact inodes
 * inherit as mtime, and which implied tar directories get) is {@link Builder#buildTime} if set,
 * else the most common mtime in the tree (ties: the newest), else 0.
 *
 * <p>File contents are streamed, never held in memory; a directory source's files are read
 * once. Tar sources are first made seekable (compressed ones and streams are decompressed
 * into a temporary file, or for tar-index into the blob directory, where the tar becomes the
 * data blob).
 *
 * <pre>{@code
 * MkfsResult r = Mkfs.builder().layout(Layout.CHUNKED).chunkSize(1 << 20).build()
 *     .build(Path.of("rootfs"), Path.of("image.meta"));
 * }</pre>
 */
public final class Mkfs {
  public static final int DEFAULT_CHUNK_SIZE = 1 << 20;
  /**
   * Piece size of the blob index (chunked and tar-index): the smallest range the daemon can
   * fetch and verify, so what a random 4 KiB read costs at least. 16 KiB keeps that at 4x the
   * bytes asked; the index costs 32 bytes per piece (0.2% of the data blob, in the meta blob).
   */
  public static final int DEFAULT_PIECE_SIZE = 16 << 10;
  private static final int FULL_BLKSZBITS = 12;
  private static final int TAR_INDEX_BLKSZBITS = 9;

  private final Layout layout;
  private final int chunkSize;
  private final int pieceSize;
  private final Path blobDir;
  private final Instant buildTime;
  private final boolean convertWhiteouts;

  private Mkfs(Builder b) {
    this.layout = b.layout;
    this.chunkSize = b.chunkSize;
    this.pieceSize = b.pieceSize;
    this.blobDir = b.blobDir;
    this.buildTime = b.buildTime;
    this.convertWhiteouts = b.convertWhiteouts;
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * Builds an image of {@code source}, a directory or a tar file, into {@code output}. A data
   * blob, if the layout has one, goes into the blob directory named by its SHA-256 hex.
   *
   * @throws IOException on I/O errors and on source entries that cannot be represented (the
   *     message names the entry)
   */
  public MkfsResult build(Path source, Path output) throws IOException {
    if (Files.isDirectory(source, LinkOption.NOFOLLOW_LINKS)) {
      if (layout == Layout.TAR_INDEX) {
        throw new IOException("the tar-index layout needs a tar source, not a directory: " + source);
      }
      return write(DirectorySource.scan(source), null, output, null);
    }
    if (!Files.isRegularFile(source)) {
      throw new java.nio.file.NoSuchFileException(source.toString());
    }
    return buildFromTar(source, null, output);
  }

  /** Builds an image of a tar (plain, gzip or zstd) read from a stream, e.g. stdin. */
  public MkfsResult buildFromTarStream(InputStream tar, Path output) throws IOException {
    return buildFromTar(null, tar, output);
  }

  private MkfsResult buildFromTar(Path source, InputStream stream, Path output) throws IOException {
    Path outDir = parentOf(output);
    boolean index = layout == Layout.TAR_INDEX;
    Path tempDir = index ? blobDir(output) : outDir;
    TarInput.SeekableTar tar = TarInput.open(source, stream, tempDir, index ? pieceSize : 0);
    try {
      try (TarSource src = TarSource.scan(tar.path(), convertWhiteouts)) {
        for (TreeInode dir : src.implicitDirectories) {
          dir.uid = 0;
          dir.gid = 0;
        }
        return write(src.root(), src.implicitDirectories, output, index ? tar : null);
      }
    } finally {
      if (tar.temporary()) {
        Files.deleteIfExists(tar.path());
      }
    }
  }

  /**
   * Builds the image of a scanned tree. {@code implicit}: directories a tar implied (their
   * mtime is the build time); {@code tar}: the data blob of a tar-index image, put into the
   * blob directory only once the image is built (a failed build leaves nothing there).
   */
  private MkfsResult write(TreeInode root, List<TreeInode> implicit, Path output,
      TarInput.SeekableTar tar) throws IOException {
    long[] time = chooseBuildTime(root, implicit == null ? List.of() : implicit);
    if (implicit != null) {
      for (TreeInode dir : implicit) {
        dir.mtime = time[0];
        dir.mtimeNsec = (int) time[1];
      }
    }
    int blkszbits = layout == Layout.TAR_INDEX ? TAR_INDEX_BLKSZBITS : FULL_BLKSZBITS;
    ImageWriter writer = new ImageWriter(root, blkszbits, time[0], (int) time[1]);
    Path outDir = parentOf(output);
    PieceDigests.Result blobDigests = null;
    Path blobPath = null;
    if (layout == Layout.CHUNKED) {
      Path dir = blobDir(output);
      Path tmp = Files.createTempFile(dir, ".lazypull-blob-", ".tmp");
      try {
        try (FileChannel blob = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
          blobDigests = ChunkedBlobWriter.write(writer, chunkSize, pieceSize, blob);
        }
        blobPath = dir.resolve(blobDigests.sha256Hex());
        makeReadable(tmp);
        Files.move(tmp, blobPath, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } finally {
        Files.deleteIfExists(tmp);
      }
    } else if (layout == Layout.TAR_INDEX) {
      blobDigests = tar.digests();
      indexTarMembers(writer);
    }
    if (blobDigests != null) {
      writer.setDevice(blobDigests.sha256Hex(), blobDigests.size());
    }
    writer.place();
    long erofsBytes = writer.totalBlocks() * writer.blockSize();
    if (blobDigests != null) {
      writer.setUniaddr(BlobIndex.fileSize(erofsBytes, List.of(blobDigests), writer.blockSize())
          / writer.blockSize());
    }
    writer.encodeMetadata();
    if (layout == Layout.FULL) {
      DataBlockWriter.readTails(writer);
    }
    ByteBuffer meta = writer.finishMetadata();
    Path tmp = Files.createTempFile(outDir, ".lazypull-mkfs-", ".tmp");
    try {
      long fileSize;
      String fsid;
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE);
          HashingOutput out = new HashingOutput(ch)) {
        out.write(meta);
        DataBlockWriter.write(writer, out);
        out.skipTo(erofsBytes);
        if (blobDigests != null) {
          BlobIndex.write(out, erofsBytes, List.of(blobDigests), writer.blockSize());
        }
        fileSize = out.position();
        fsid = out.finish();
      }
      makeReadable(tmp);
      if (layout == Layout.TAR_INDEX) {
        blobPath = placeTarBlob(tar, blobDir(output));
      }
      Files.move(tmp, output, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      Optional<MkfsResult.DataBlob> blob = blobDigests == null ? Optional.empty()
          : Optional.of(new MkfsResult.DataBlob(blobPath, blobDigests.size(), blobDigests.sha256Hex()));
      return new MkfsResult(layout, output, writer.plans.size(), erofsBytes, fileSize, fsid, blob);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }

  /** Tar-index: each regular file is one chunk at its data offset in the tar (device 1). */
  private static void indexTarMembers(ImageWriter writer) throws IOException {
    int blockSize = writer.blockSize();
    for (InodePlan p : writer.plans) {
      TreeInode n = p.inode;
      if (!n.isRegular() || n.size == 0) {
        continue;
      }
      if (n.tarDataOffset < 0) {
        throw new IOException(n.origin + ": sparse tar members cannot be indexed; use the full"
            + " or chunked layout");
      }
      if (n.tarDataOffset % blockSize != 0) {
        throw new IOException(n.origin + ": data offset " + n.tarDataOffset + " is not 512-aligned");
      }
      int bits = Math.max(TAR_INDEX_BLKSZBITS, 64 - Long.numberOfLeadingZeros(n.size - 1));
      if (bits > TAR_INDEX_BLKSZBITS + Erofs.CHUNK_FORMAT_BLKBITS_MASK) {
        throw new IOException(n.origin + ": too large for one chunk");
      }
      long blk = n.tarDataOffset / blockSize;
      if (blk >= Erofs.NULL_ADDR) {
        throw new IOException(n.origin + ": data offset beyond 32-bit block addresses (tar > 2 TiB)");
      }
      p.chunkBits = bits;
      p.chunkDevice = 1;
      p.chunkBlocks = new long[] {blk};
    }
  }

  /** Puts the tar into the blob directory as {@code <sha256 hex>}; returns that path. */
  private static Path placeTarBlob(TarInput.SeekableTar tar, Path dir) throws IOException {
    Path target = dir.resolve(tar.digests().sha256Hex());
    if (tar.temporary()) {
      makeReadable(tar.path());
      Files.move(tar.path(), target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      return target;
    }
    if (Files.exists(target)) {
      if (Files.isSameFile(target, tar.path()) || Files.size(target) == tar.digests().size()) {
        return target; // named by its digest: same name, same bytes
      }
      Files.delete(target);
    }
    try {
      Files.createLink(target, tar.path());
    } catch (FileSystemException | UnsupportedOperationException e) {
      Path tmp = Files.createTempFile(dir, ".lazypull-tar-", ".tmp");
      try {
        Files.copy(tar.path(), tmp, StandardCopyOption.REPLACE_EXISTING);
        makeReadable(tmp);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } finally {
        Files.deleteIfExists(tmp);
      }
    }
    return target;
  }

  /** {seconds, nanoseconds}: the option, else the most common mtime (ties: newest), else 0. */
  private long[] chooseBuildTime(TreeInode root, List<TreeInode> implicit) {
    if (buildTime != null) {
      return new long[] {buildTime.getEpochSecond(), buildTime.getNano()};
    }
    Set<TreeInode> skip = Collections.newSetFromMap(new IdentityHashMap<>());
    skip.addAll(implicit);
    Set<TreeInode> seen = Collections.newSetFromMap(new IdentityHashMap<>());
    Map<Instant, Integer> votes = new HashMap<>();
    ArrayDeque<TreeInode> todo = new ArrayDeque<>();
    todo.add(root);
    while (!todo.isEmpty()) {
      TreeInode n = todo.poll();
      if (!seen.add(n)) {
        continue;
      }
      if (!skip.contains(n)) {
        votes.merge(Instant.ofEpochSecond(n.mtime, n.mtimeNsec), 1, Integer::sum);
      }
      if (n.isDirectory()) {
        todo.addAll(n.children.values());
      }
    }
    Instant best = null;
    int bestVotes = 0;
    for (Map.Entry<Instant, Integer> v : votes.entrySet()) {
      if (v.getValue() > bestVotes || (v.getValue() == bestVotes && v.getKey().isAfter(best))) {
        best = v.getKey();
        bestVotes = v.getValue();
      }
    }
    return best == null ? new long[] {0, 0} : new long[] {best.getEpochSecond(), best.getNano()};
  }

  /** Temporary files are created 0600; images and blobs are meant to be shared: 0644. */
  private static void makeReadable(Path file) throws IOException {
    Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
  }

  private Path blobDir(Path output) throws IOException {
    Path dir = blobDir != null ? blobDir : parentOf(output);
    Files.createDirectories(dir);
    return dir;
  }

  private static Path parentOf(Path output) {
    Path parent = output.toAbsolutePath().getParent();
    return parent == null ? Path.of("/") : parent;
  }

  /** Options of {@link Mkfs}; each may be set once. */
  public static final class Builder {
    private Layout layout = Layout.FULL;
    private int chunkSize = DEFAULT_CHUNK_SIZE;
    private int pieceSize = DEFAULT_PIECE_SIZE;
    private Path blobDir;
    private Instant buildTime;
    private boolean convertWhiteouts = true;

    private Builder() {}

    public Builder layout(Layout layout) {
      this.layout = java.util.Objects.requireNonNull(layout);
      return this;
    }

    /** Chunk size of the chunked layout: a power of two, at least 4096. Default 1 MiB. */
    public Builder chunkSize(long bytes) {
      if (bytes < 4096 || bytes > (1L << 30) || Long.bitCount(bytes) != 1) {
        throw new IllegalArgumentException("chunk size must be a power of two from 4096 to 1 GiB: " + bytes);
      }
      this.chunkSize = (int) bytes;
      return this;
    }

    /**
     * Piece size of the blob index (chunked and tar-index): a power of two from 4096 to 64 MiB.
     * Default {@link #DEFAULT_PIECE_SIZE}.
     */
    public Builder pieceSize(long bytes) {
      if (bytes < 4096 || bytes > (64L << 20) || Long.bitCount(bytes) != 1) {
        throw new IllegalArgumentException("piece size must be a power of two from 4096 to 64 MiB: " + bytes);
      }
      this.pieceSize = (int) bytes;
      return this;
    }

    /** Where the data blob goes (default: the output's directory). */
    public Builder blobDir(Path dir) {
      this.blobDir = dir;
      return this;
    }

    /** Superblock build time; null = the most common mtime of the tree. */
    public Builder buildTime(Instant time) {
      this.buildTime = time;
      return this;
    }

    /** Tar sources: OCI whiteouts to overlayfs form (default true), as mkfs.erofs --aufs. */
    public Builder convertWhiteouts(boolean convert) {
      this.convertWhiteouts = convert;
      return this;
    }

    public Mkfs build() {
      return new Mkfs(this);
    }
  }
}
