package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "umount", mixinStandardHelpOptions = true, description = "Unmount an image mounted by lazypull mount.")
final class UmountCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'umount' is not implemented yet");
  }
}
