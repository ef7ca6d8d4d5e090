package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "stat", mixinStandardHelpOptions = true, description = "Print the size of a blob in a backend.")
final class StatCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'stat' is not implemented yet");
  }
}
