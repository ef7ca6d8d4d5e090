package io.lazypull.cli;

import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** Uploads files as blobs named by their sha256 and prints "sha256:HEX" for each, in order. */
@Command(name = "push", mixinStandardHelpOptions = true,
    description = {"Upload files to a backend as blobs named by their sha256 and print",
        "sha256:HEX for each file, in order. Blobs already there with the same size",
        "are not sent again. Files above the multipart threshold go up in parts (S3",
        "multipart upload, registry PATCH chunks).",
        "",
        "A file named like a blob (64 hex digits, as in a --blob-dir or an OCI layout)",
        "must have that sha256: if one does not, nothing is uploaded."})
final class PushCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(PushCommand.class);

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;
  @Mixin BackendArgs backend;

  @Parameters(paramLabel = "FILE", arity = "1..*", description = "Files to upload.")
  List<Path> files;

  @Option(names = "--part-size", paramLabel = "BYTES", defaultValue = "16M",
      converter = ByteSizes.class,
      description = "Size of one part of a multipart upload (default: ${DEFAULT-VALUE}; S3 needs >= 5M).")
  long partSize;

  @Option(names = "--multipart-threshold", paramLabel = "BYTES", defaultValue = "64M",
      converter = ByteSizes.class,
      description = "Upload files larger than this in parts (default: ${DEFAULT-VALUE}).")
  long threshold;

  @Override
  public Integer call() throws IOException {
    for (Path f : files) {
      if (!Files.isRegularFile(f)) {
        throw new NoSuchFileException(f.toString());
      }
    }
    if (partSize < 1 || partSize > Integer.MAX_VALUE) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--part-size out of range");
    }
    for (Path f : files) {
      checkName(f);
    }
    PrintWriter out = spec.commandLine().getOut();
    try (BlobBackend b = backend.open(spec.commandLine(),
        backend.options().multipart(threshold, (int) partSize).build())) {
      for (Path f : files) {
        long t0 = System.nanoTime();
        long before = b.stats().bytesWritten();
        String hex = b.put(f);
        boolean uploaded = b.stats().bytesWritten() > before;
        log.info("{} {} ({} bytes) as sha256:{} in {} ms", uploaded ? "uploaded" : "already there:",
            f, Files.size(f), hex, (System.nanoTime() - t0) / 1_000_000);
        out.println(Digests.SHA256_PREFIX + hex);
        out.flush();
      }
    }
    return 0;
  }

  /**
   * Blobs are named by their digest: a file named like one whose content has another digest
   * is damaged (or misnamed), and pushing it would publish it under a name nobody asked for.
   */
  private static void checkName(Path f) throws IOException {
    String name = f.getFileName().toString();
    if (!Digests.isHex(name)) {
      return;
    }
    String actual = Digests.sha256Hex(f);
    if (!actual.equals(name)) {
      throw new IOException(f + " is named like the blob sha256:" + name + " but its content has sha256:"
          + actual + " (damaged or misnamed): nothing uploaded");
    }
  }
}
