package io.lazypull.cli;

import io.lazypull.daemon.failover.HolderServer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

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
      "The socket is created mode 0600; only the holder's uid or root may connect. The",
      "holder never keeps per-object fds. Killing the holder while no daemon runs kills",
      "the cache: supervise it more carefully than the daemon.",
    })
final class HolderCommand implements Callable<Integer> {
  @Option(names = "--socket", required = true, paramLabel = "PATH",
      description = "Unix socket to listen on (created mode 0600, in an existing directory).")
  Path socket;

  @Override
  public Integer call() throws Exception {
    // A typo must not create a directory tree: the socket's directory is the operator's to make
    // (with the permissions it needs).
    Path dir = socket.toAbsolutePath().getParent();
    if (!Files.isDirectory(dir)) {
      throw new IOException("no such directory: " + dir + " (the holder's socket goes into an existing"
          + " directory; it is not created)");
    }
    HolderServer server = HolderServer.listen(socket);
    Runtime.getRuntime().addShutdownHook(new Thread(server::close, "holder-shutdown"));
    server.serve();
    return 0;
  }
}
