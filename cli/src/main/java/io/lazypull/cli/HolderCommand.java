package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "holder", mixinStandardHelpOptions = true, description = "Keep the device fd across daemon restarts (SCM_RIGHTS over a unix socket).")
final class HolderCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'holder' is not implemented yet");
  }
}
