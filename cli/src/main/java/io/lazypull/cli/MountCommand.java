package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "mount", mixinStandardHelpOptions = true, description = "Mount an image served on demand (fscache mode or over the fuse-shim).")
final class MountCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'mount' is not implemented yet");
  }
}
