package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this benchmark lands; it fails clearly instead of pretending. */
@Command(name = "failover", mixinStandardHelpOptions = true, description = "Read stalls around daemon kills: cold restart and hot standby.")
final class BenchFailoverCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'bench failover' is not implemented yet");
  }
}
