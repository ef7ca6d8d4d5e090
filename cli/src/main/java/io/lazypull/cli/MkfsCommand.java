package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "mkfs", mixinStandardHelpOptions = true, description = "Build an EROFS image from a directory or a tar layer.")
final class MkfsCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'mkfs' is not implemented yet");
  }
}
