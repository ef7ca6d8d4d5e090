package io.lazypull.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Benchmarks print a table; figures and how they were taken go in docs/benchmarks.md. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Benchmarks (each prints a table; see docs/benchmarks.md).",
    subcommands = {
      BenchMkfsCommand.class,
      BenchBackendsCommand.class,
      BenchReadCommand.class,
      BenchFailoverCommand.class,
      BenchContainerdCommand.class,
      BenchS3ProxyCommand.class,
    })
final class BenchCommand implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a benchmark name is required");
  }
}
