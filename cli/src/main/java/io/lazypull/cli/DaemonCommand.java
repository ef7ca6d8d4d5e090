package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "daemon", mixinStandardHelpOptions = true, description = "Run the on-demand daemon on a device (kernel /dev/cachefiles or the fuse-shim).")
final class DaemonCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'daemon' is not implemented yet");
  }
}
