package io.lazypull.cli;

import java.util.List;
import java.util.Stack;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * Takes an option's value as it is, also when it looks like an option ({@code
 * --daemon-arg=--verbose}): picocli refuses such values by default, and the point of an option
 * that passes arguments on to a child is that they are the child's options.
 */
final class VerbatimArg implements CommandLine.IParameterConsumer {
  @Override
  public void consumeParameters(Stack<String> args, ArgSpec argSpec, CommandSpec commandSpec) {
    if (args.isEmpty()) {
      String name = argSpec instanceof CommandLine.Model.OptionSpec o ? o.longestName() : argSpec.paramLabel();
      throw new CommandLine.ParameterException(commandSpec.commandLine(),
          "Missing value for option '" + name + "' (e.g. " + name + "=--verbose)");
    }
    List<String> values = argSpec.getValue();
    values.add(args.pop());
  }
}
