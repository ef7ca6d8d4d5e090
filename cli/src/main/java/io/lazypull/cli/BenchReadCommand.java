package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this benchmark lands; it fails clearly instead of pretending. */
@Command(name = "read", mixinStandardHelpOptions = true, description = "Reading a whole image: native EROFS, bindfs, shim warm and cold.")
final class BenchReadCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'bench read' is not implemented yet");
  }
}
