package io.lazypull.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code lazypull extract}: writes an image's tree into a directory with {@link Extractor}. */
@Command(name = "extract", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Extract an EROFS image into a directory: every file type (devices, fifos and",
      "sockets with mknod), modes including setuid/sticky, owners, mtimes with",
      "nanoseconds, xattrs of every namespace, hard links. Run as root to restore owners,",
      "devices and trusted.* xattrs. Chunked and tar-index images need their data blobs",
      "with --device, in device-table order (see 'lazypull inspect'). DIR is created if",
      "missing; existing entries are not overwritten.",
      "",
      "Every piece of a data blob is checked against the image's blob index (sha256 per",
      "piece) before its bytes are written: a blob that is not the one the image was built",
      "with stops the extraction with an error naming the blob and the piece, and the file",
      "being written is removed.",
      ""
    })
final class ExtractCommand implements Callable<Integer> {
  @Option(names = "--device", paramLabel = "BLOB", description = "An extra device (data blob); repeat in order.")
  List<Path> devices = new ArrayList<>();

  @Parameters(index = "0", paramLabel = "IMAGE", description = "The image or meta blob.")
  Path imagePath;

  @Parameters(index = "1", paramLabel = "DIR", description = "Where to extract.")
  Path dir;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    try (ImageArgs args = new ImageArgs(imagePath, devices)) {
      if (!args.image.hasDeviceData()) {
        throw new java.io.IOException(imagePath + ": " + args.missingDevicesHint());
      }
      Extractor.Stats s = new Extractor(args.image, dir).extract();
      spec.commandLine().getOut().printf("extracted %d entries (%d bytes of file data) into %s%n",
          s.entries(), s.bytes(), dir);
      spec.commandLine().getOut().flush();
    }
    return 0;
  }
}
