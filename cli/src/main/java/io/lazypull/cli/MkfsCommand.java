package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code lazypull mkfs}: builds an EROFS image (and its data blob) with {@link Mkfs}. */
@Command(name = "mkfs", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Build an EROFS image from a directory or a tar layer.",
      "",
      "SOURCE is a directory, a .tar, .tar.gz or .tar.zst file (recognized by its magic",
      "bytes), or - to read a tar from stdin. Tar layers get OCI whiteouts converted to",
      "overlayfs form (.wh.NAME -> char 0:0 device, .wh..wh..opq -> trusted.overlay.opaque=y).",
      "",
      "Layouts:",
      "  full       one self-contained image, 4 KiB blocks, inline tails",
      "  chunked    OUTPUT is a meta blob; file data goes to ONE data blob named by its",
      "             sha256 in --blob-dir, in --chunk-size chunks (identical chunks stored",
      "             once, zero chunks are holes); 4 KiB blocks; mount with device=BLOB",
      "  tar-index  the uncompressed tar itself is the data blob (placed in --blob-dir as",
      "             <sha256>); OUTPUT indexes into it; 512-byte blocks (kernel 6.4+)",
      "",
      "Chunked and tar-index meta blobs end with a blob index (sha256 of every piece of the",
      "data blob) after the EROFS image; the kernel and fsck.erofs ignore it. The fsid",
      "printed is the sha256 of OUTPUT. Output is reproducible: the superblock time is",
      "--mtime, else $SOURCE_DATE_EPOCH, else the most common mtime of the tree.",
      ""
    })
final class MkfsCommand implements Callable<Integer> {
  @Option(names = "--layout", paramLabel = "LAYOUT", defaultValue = "full",
      description = "full, chunked or tar-index (default: ${DEFAULT-VALUE}).")
  String layout;

  @Option(names = "--chunk-size", paramLabel = "BYTES", converter = ByteSizes.class,
      description = "Chunk size of the chunked layout: a power of two >= 4096, e.g. 64K (default: 1M).")
  Long chunkSize;

  @Option(names = "--piece-size", paramLabel = "BYTES", converter = ByteSizes.class,
      description = "Piece size of the blob index (chunked, tar-index): the smallest range the daemon"
          + " fetches and verifies; a power of two from 4K to 64M (default: 16K).")
  Long pieceSize;

  @Option(names = "--blob-dir", paramLabel = "DIR",
      description = "Where the data blob goes (default: OUTPUT's directory).")
  Path blobDir;

  @Option(names = "--mtime", paramLabel = "SECONDS",
      description = "Superblock build time (epoch seconds); implied tar directories get it too.")
  Long mtime;

  @Option(names = "--keep-whiteouts",
      description = "Keep .wh.* tar entries as plain files instead of converting them.")
  boolean keepWhiteouts;

  @Parameters(index = "0", paramLabel = "SOURCE", description = "Directory, tar file, or - for stdin.")
  String source;

  @Parameters(index = "1", paramLabel = "OUTPUT", description = "The image (meta blob) to write.")
  Path output;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    Layout l;
    try {
      l = Layout.fromCliName(layout);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    Mkfs.Builder b = Mkfs.builder().layout(l).blobDir(blobDir).convertWhiteouts(!keepWhiteouts);
    if (chunkSize != null) {
      if (l != Layout.CHUNKED) {
        throw new CommandLine.ParameterException(spec.commandLine(), "--chunk-size only applies to --layout chunked");
      }
      try {
        b.chunkSize(chunkSize);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
    }
    if (pieceSize != null) {
      if (l == Layout.FULL) {
        throw new CommandLine.ParameterException(spec.commandLine(), "--piece-size only applies to --layout chunked or tar-index");
      }
      try {
        b.pieceSize(pieceSize);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
      }
    }
    Instant time = buildTime();
    if (time != null) {
      b.buildTime(time);
    }
    Mkfs mkfs = b.build();
    MkfsResult r = source.equals("-")
        ? mkfs.buildFromTarStream(System.in, output)
        : mkfs.build(Path.of(source), output);
    PrintWriter out = spec.commandLine().getOut();
    out.printf("layout:      %s%n", r.layout());
    out.printf("inodes:      %d%n", r.inodes());
    out.printf("image:       %s (%d bytes: EROFS %d%s)%n", r.image(), r.imageBytes(), r.erofsBytes(),
        r.imageBytes() > r.erofsBytes() ? ", blob index " + (r.imageBytes() - r.erofsBytes()) : "");
    out.printf("fsid:        %s%n", r.fsid());
    r.dataBlob().ifPresent(blob -> {
      out.printf("data blob:   %s (%d bytes)%n", blob.path(), blob.size());
      out.printf("blob sha256: %s%n", blob.sha256Hex());
    });
    out.flush();
    return 0;
  }

  private Instant buildTime() {
    if (mtime != null) {
      return Instant.ofEpochSecond(mtime);
    }
    String epoch = System.getenv("SOURCE_DATE_EPOCH");
    if (epoch != null && !epoch.isBlank()) {
      try {
        return Instant.ofEpochSecond(Long.parseLong(epoch.trim()));
      } catch (NumberFormatException e) {
        throw new CommandLine.ParameterException(spec.commandLine(),
            "SOURCE_DATE_EPOCH is not a number of seconds: '" + epoch + "'");
      }
    }
    return null;
  }
}
