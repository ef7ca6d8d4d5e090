package io.lazypull.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** Placeholder until this command lands; it fails clearly instead of pretending. */
@Command(name = "demo", mixinStandardHelpOptions = true, description = "Build a sample image, serve it on demand, mount it, read it.")
final class DemoCommand implements Callable<Integer> {
  @Override
  public Integer call() {
    throw new UnsupportedOperationException("'demo' is not implemented yet");
  }
}
