package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "push", mixinStandardHelpOptions = true, description = "Upload files to a backend as blobs named by their sha256.")
final class PushCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'push' is not implemented yet");
  }
}
