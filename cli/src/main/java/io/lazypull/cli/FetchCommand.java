package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "fetch", mixinStandardHelpOptions = true, description = "Write a range of a blob from a backend to stdout.")
final class FetchCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'fetch' is not implemented yet");
  }
}
