package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "upgrade", mixinStandardHelpOptions = true, description = "Hand the device from the running daemon to a standby without killing anything.")
final class UpgradeCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'upgrade' is not implemented yet");
  }
}
