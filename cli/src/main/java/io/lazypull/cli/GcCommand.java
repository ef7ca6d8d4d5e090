package io.lazypull.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "gc", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Run the cache's eviction now, in the running 'up' (or shim, relay): evict down to its",
      "--cache-size, and remove the blobs no mount uses, without waiting for --cache-grace.",
      "Ranges a reader needs at that moment are never evicted. Prints what was freed.",
    })
final class GcCommand implements Callable<Integer> {
  @Option(names = "--cache-dir", paramLabel = "DIR", defaultValue = "/var/cache/lazypull",
      description = "The 'up' to ask: its --cache-dir (default: ${DEFAULT-VALUE}).")
  Path cacheDir;

  @Option(names = "--socket", paramLabel = "PATH", description = "The ops socket of a shim or relay instead.")
  Path socket;

  @Override
  public Integer call() throws Exception {
    Path s = socket != null ? socket : cacheDir.resolve("run").resolve("lazypull.sock");
    String body;
    try {
      body = OpsClient.request(s, "POST", "/gc", 120_000);
    } catch (java.io.IOException e) {
      throw new java.io.IOException("gc through " + s + ": " + e.getMessage(), e);
    }
    JsonNode n = OpsViews.json().readTree(body);
    long limit = n.path("limitBytes").asLong();
    System.out.println("freed " + StatusCommand.bytes(n.path("freedBytes").asLong()) + "; cache now "
        + StatusCommand.bytes(n.path("cacheBytes").asLong()) + (limit > 0 ? " of " + StatusCommand.bytes(limit) : ""));
    return 0;
  }
}
