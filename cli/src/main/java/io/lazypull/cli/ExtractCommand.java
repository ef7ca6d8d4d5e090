package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "extract", mixinStandardHelpOptions = true, description = "Extract an EROFS image into a directory.")
final class ExtractCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'extract' is not implemented yet");
  }
}
