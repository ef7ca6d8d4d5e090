package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this benchmark lands; it fails clearly instead of pretending. */
@Command(name = "mkfs", mixinStandardHelpOptions = true, description = "lazypull mkfs against mkfs.erofs on the same tree.")
final class BenchMkfsCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'bench mkfs' is not implemented yet");
  }
}
