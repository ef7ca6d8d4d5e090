package io.lazypull.cli;

import io.lazypull.daemon.failover.HolderServer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sun.misc.Signal;

@Command(name = "holder", mixinStandardHelpOptions = true,
    description = {
      "Keep the device fd across daemon restarts.",
      "",
      "The kernel (and the fuse-shim) tear the on-demand cache down when the last copy of",
      "the device fd is closed: every read in flight then fails with EIO. This small",
      "process keeps a copy. A daemon started with --holder PATH takes the device from it",
      "(writing 'restore', so every pending read is delivered again) or, if none is held",
      "yet, binds a new one and hands it over. The holder gives the device to one daemon",
      "at a time, and to the next one only once the previous process has exited; a",
      "standby daemon (--standby) waits here and takes over at once.",
      "",
      "The fanotify relay ('lazypull shim --frontend fanotify --holder PATH') keeps its",
      "fanotify group here too. If the relay dies, the events it had read are denied",
      "(those readers get EIO), later reads of data not cached yet wait up to",
      "--relay-grace for a new relay to take the group, then get EIO: never the zeros",
      "of a sparse cache file. The group is let go once no mount uses its cache files.",
      "",
      "The socket is created mode 0600; only the holder's uid or root may connect. The",
      "holder never keeps per-object fds. Killing the holder while no daemon runs kills",
      "the cache: supervise it more carefully than the daemon. SIGTERM while it keeps a",
      "fanotify group whose cache files a mount still uses (also a lazily detached one)",
      "is refused: it exits by itself once they are closed.",
    })
final class HolderCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(HolderCommand.class);

  @Option(names = "--socket", required = true, paramLabel = "PATH",
      description = "Unix socket to listen on (created mode 0600, in an existing directory).")
  Path socket;

  @Option(names = "--relay-grace", paramLabel = "SECONDS", defaultValue = "30",
      description = "After the fanotify relay died, how long reads of data not cached yet wait for a new"
          + " relay before they get EIO (default: ${DEFAULT-VALUE}).")
  int relayGraceSeconds;

  @Override
  public Integer call() throws Exception {
    if (relayGraceSeconds < 0) {
      throw new IllegalArgumentException("--relay-grace must be 0 or more seconds, not " + relayGraceSeconds);
    }
    // A typo must not create a directory tree: the socket's directory is the operator's to make
    // (with the permissions it needs).
    Path dir = socket.toAbsolutePath().getParent();
    if (!Files.isDirectory(dir)) {
      throw new IOException("no such directory: " + dir + " (the holder's socket goes into an existing"
          + " directory; it is not created)");
    }
    HolderServer server = HolderServer.listen(socket, relayGraceSeconds * 1000L);
    Runtime.getRuntime().addShutdownHook(new Thread(server::close, "holder-shutdown"));
    AtomicBoolean stopAsked = new AtomicBoolean();
    for (String name : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(name), s -> {
        if (!server.keepsGroupInUse()) {
          server.close();
          return;
        }
        log.error("SIG{}: not stopping yet: this holder keeps a fanotify group whose cache files a mount still uses"
            + " (if its relay died without it, their reads of data not fetched would return zeros); exiting once they"
            + " are closed", name);
        if (stopAsked.compareAndSet(false, true)) {
          Thread t = new Thread(() -> {
            while (server.keepsGroupInUse()) {
              sleep(500);
            }
            log.info("the fanotify group is let go: stopping");
            server.close();
          }, "holder-stop");
          t.setDaemon(true);
          t.start();
        }
      });
    }
    server.serve();
    return 0;
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
