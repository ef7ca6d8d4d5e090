package io.lazypull.cli;

import io.lazypull.daemon.failover.HolderClient;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "upgrade", mixinStandardHelpOptions = true,
    description = {
      "Hand the device from the active daemon to a standby, without killing anything.",
      "",
      "Start the new daemon first with 'lazypull daemon --standby --holder PATH ...': it",
      "starts up, connects its backends and waits. This command then asks the active",
      "daemon (through the holder) to stop reading, answer everything it already read,",
      "close its objects and exit; the standby takes the device at once and writes",
      "'restore'. Readers see a short stall, not an error.",
    })
final class UpgradeCommand implements Callable<Integer> {
  @Option(names = "--holder", required = true, paramLabel = "PATH", description = "The holder's socket.")
  Path holder;

  @Option(names = "--wait", paramLabel = "SECONDS", defaultValue = "60",
      description = "Wait this long for a standby to be ready (default: ${DEFAULT-VALUE}).")
  int waitSeconds;

  @Override
  public Integer call() throws Exception {
    try (HolderClient client = HolderClient.connect(holder)) {
      long deadline = System.nanoTime() + waitSeconds * 1_000_000_000L;
      while (!client.status().matches(".*waiting=[1-9].*") && System.nanoTime() < deadline) {
        Thread.sleep(100); // the standby's JVM is still starting
      }
      int pid = client.upgrade();
      System.out.println("asked daemon pid " + pid + " to hand over to the standby");
    }
    return 0;
  }
}
