package io.lazypull.cli;

import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** Prints blob sizes: one digest, its size alone; several, "SIZE sha256:HEX" lines. */
@Command(name = "stat", mixinStandardHelpOptions = true,
    description = {"Print the size of a blob in a backend; for several blobs, one",
        "'SIZE sha256:HEX' line each. A missing blob is an error (exit 1)."})
final class StatCommand implements Callable<Integer> {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;
  @Mixin BackendArgs backend;

  @Parameters(paramLabel = "DIGEST", arity = "1..*", converter = BackendArgs.DigestConverter.class,
      description = "Blobs: sha256:HEX or HEX.")
  List<String> digests;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    try (BlobBackend b = backend.open(spec.commandLine())) {
      for (String hex : digests) {
        long size = b.size(hex);
        out.println(digests.size() == 1 ? Long.toString(size)
            : size + " " + Digests.SHA256_PREFIX + hex);
        out.flush();
      }
    }
    return 0;
  }
}
