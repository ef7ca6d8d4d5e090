package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "shim", mixinStandardHelpOptions = true, description = "Run the fuse-shim: a FUSE filesystem that emulates cachefiles on-demand mode.")
final class ShimCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'shim' is not implemented yet");
  }
}
