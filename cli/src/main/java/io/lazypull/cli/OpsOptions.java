package io.lazypull.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Where a serving process answers for metrics and status. */
final class OpsOptions {
  @Option(names = "--ops-socket", paramLabel = "PATH",
      description = "Serve metrics (GET /metrics, Prometheus text) and status (GET /status, JSON) on this unix"
          + " socket (mode 0600); 'lazypull status --socket PATH' reads it.")
  Path socket;

  @Option(names = "--metrics-address", paramLabel = "HOST:PORT",
      description = "Serve the same over TCP too, e.g. 127.0.0.1:9464 (unauthenticated: keep it local).")
  String address;

  OpsServer start(OpsServer.Handler handler) throws java.io.IOException {
    return socket == null && address == null ? null : OpsServer.start(socket, address, handler);
  }
}
