package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "inspect", mixinStandardHelpOptions = true, description = "Show an EROFS image: superblock, features, device table, tree.")
final class InspectCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'inspect' is not implemented yet");
  }
}
