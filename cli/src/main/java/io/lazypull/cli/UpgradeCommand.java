package io.lazypull.cli;

import io.lazypull.daemon.failover.HolderClient;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
      "'restore'. Readers see a short stall, not an error. It returns once the standby",
      "has taken over, and prints its pid.",
    })
final class UpgradeCommand implements Callable<Integer> {
  private static final Pattern ACTIVE = Pattern.compile("active=(\\d+)");

  @Option(names = "--holder", required = true, paramLabel = "PATH", description = "The holder's socket.")
  Path holder;

  @Option(names = "--wait", paramLabel = "SECONDS", defaultValue = "60",
      description = "Wait this long for a standby, and for the take-over (default: ${DEFAULT-VALUE}).")
  int waitSeconds;

  @Override
  public Integer call() throws Exception {
    try (HolderClient client = HolderClient.connect(holder)) {
      long deadline = System.nanoTime() + waitSeconds * 1_000_000_000L;
      while (!client.status().matches(".*waiting=[1-9].*") && System.nanoTime() < deadline) {
        Thread.sleep(100); // the standby's JVM is still starting
      }
      int old = client.upgrade();
      System.out.println("asked daemon pid " + old + " to hand over to the standby");
      // It answers what it already read, closes its objects and lets go; then the standby
      // takes the device. Report the outcome, not just the request.
      deadline = System.nanoTime() + waitSeconds * 1_000_000_000L;
      String status = client.status();
      while (activePid(status) == old && System.nanoTime() < deadline) {
        Thread.sleep(50);
        status = client.status();
      }
      int now = activePid(status);
      if (now == old) {
        throw new IOException("daemon pid " + old + " has not handed over within " + waitSeconds
            + " s (" + status + ")");
      }
      System.out.println(now > 0 ? "daemon pid " + now + " took over from pid " + old
          : "daemon pid " + old + " let go; no daemon holds the device yet (" + status + ")");
    }
    return 0;
  }

  /** The active pid in the holder's STATUS line, or -1 if none. */
  static int activePid(String status) {
    Matcher m = ACTIVE.matcher(status);
    return m.find() ? Integer.parseInt(m.group(1)) : -1;
  }
}
