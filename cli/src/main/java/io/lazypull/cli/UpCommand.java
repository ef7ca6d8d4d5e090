package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "up", mixinStandardHelpOptions = true, description = "Start everything a laptop needs (holder, shim, daemon, mount) in the foreground.")
final class UpCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'up' is not implemented yet");
  }
}
