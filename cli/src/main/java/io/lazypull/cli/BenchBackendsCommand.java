package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this benchmark lands; it fails clearly instead of pretending. */
@Command(name = "backends", mixinStandardHelpOptions = true, description = "Ranged-read latency and throughput per backend on loopback.")
final class BenchBackendsCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'bench backends' is not implemented yet");
  }
}
