package io.lazypull.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "status", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Show what a running 'lazypull up' (or shim, relay, daemon) serves: mounts, the front",
      "end, the daemon's generation and restarts, each backend's health, the cache's size",
      "and bound, and every blob with the fraction of it cached.",
      "",
      "It reads GET /status from the ops socket: DIR/run/lazypull.sock of 'up --cache-dir",
      "DIR', or any --ops-socket given with --socket. --json prints the JSON as it is.",
    })
final class StatusCommand implements Callable<Integer> {
  @Option(names = "--cache-dir", paramLabel = "DIR", defaultValue = "/var/cache/lazypull",
      description = "The 'up' to ask: its --cache-dir (default: ${DEFAULT-VALUE}).")
  Path cacheDir;

  @Option(names = "--socket", paramLabel = "PATH", description = "An ops socket to ask instead.")
  Path socket;

  @Option(names = "--json", description = "Print the JSON status as served.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    Path s = socket != null ? socket : cacheDir.resolve("run").resolve("lazypull.sock");
    String body;
    try {
      body = OpsClient.request(s, "GET", "/status", 10_000);
    } catch (java.io.IOException e) {
      throw new java.io.IOException("nothing answers on " + s + " (is 'lazypull up' running with this"
          + " --cache-dir?): " + e.getMessage(), e);
    }
    if (json) {
      System.out.println(body.strip());
    } else {
      System.out.print(render(OpsViews.json().readTree(body)));
    }
    return 0;
  }

  /** The status for people: one section per process, the blobs as a table. */
  static String render(JsonNode n) {
    StringBuilder b = new StringBuilder();
    if (n.has("frontend")) {
      b.append("front end   ").append(n.path("frontend").asText()).append('\n');
    }
    if (n.has("cacheDir")) {
      b.append("cache dir   ").append(n.path("cacheDir").asText()).append('\n');
    }
    for (JsonNode m : n.path("mounts")) {
      b.append("mount       ").append(m.path("target").asText()).append("  image ").append(m.path("fsid").asText());
      if (m.has("domain") && !m.path("domain").asText().equals(m.path("fsid").asText())) {
        b.append("  domain ").append(m.path("domain").asText());
      }
      b.append('\n');
    }
    JsonNode up = n.path("up");
    if (!up.isMissingNode()) {
      b.append(String.format(Locale.ROOT, "daemon      generation %d (%d restarts)%s%n", up.path("daemonGeneration").asLong(),
          up.path("daemonRestarts").asLong(), up.path("relayRestarts").asLong() > 0
              ? ", relay restarts " + up.path("relayRestarts").asLong() : ""));
    }
    JsonNode d = n.has("daemon") ? n.path("daemon") : n.has("backends") ? n : null;
    if (d != null) {
      if (d.has("error")) {
        b.append("daemon      ").append(d.path("error").asText()).append('\n');
      } else {
        JsonNode st = d.path("stats");
        b.append(String.format(Locale.ROOT, "            pid %d, %d requests in flight, %d READs (%d failed), %s fetched%n",
            d.path("pid").asLong(), d.path("inFlight").asLong(), st.path("reads").asLong(),
            st.path("readFailures").asLong(), bytes(st.path("bytesFetched").asLong())));
        for (JsonNode be : d.path("backends")) {
          b.append(String.format(Locale.ROOT, "backend     %s: %s, %d requests (%d failed), %s, mean %.1f ms%n",
              be.path("backend").asText(), be.path("health").asText(), be.path("requests").asLong(),
              be.path("errors").asLong(), bytes(be.path("bytes").asLong()), be.path("meanLatencyMs").asDouble()));
        }
      }
    }
    JsonNode shim = n.has("shim") ? n.path("shim") : n.has("relay") ? n.path("relay") : n.has("cache") ? n : null;
    if (shim != null) {
      if (shim.has("error")) {
        b.append("shim        ").append(shim.path("error").asText()).append('\n');
      } else {
        JsonNode dev = shim.path("device");
        b.append(String.format(Locale.ROOT, "device      %s, generation %d, %d restores, %d requests pending%n",
            dev.path("bound").asBoolean() ? "bound" : "NOT BOUND (no daemon)", dev.path("generation").asLong(),
            dev.path("restores").asLong(), dev.path("pendingRequests").asLong()));
        JsonNode c = shim.path("cache");
        long limit = c.path("limitBytes").asLong();
        b.append(String.format(Locale.ROOT, "cache       %s of %s, %s evicted, %d windows fetched again%n",
            bytes(c.path("bytes").asLong()), limit == 0 ? "no bound" : bytes(limit),
            bytes(c.path("stats").path("evictedBytes").asLong()), c.path("stats").path("refetchedWindows").asLong()));
        b.append(String.format(Locale.ROOT, "%n  %-10s %-20s %12s %12s %7s  %s%n", "DOMAIN", "BLOB", "SIZE", "CACHED", "", "IN USE"));
        for (JsonNode bl : c.path("blobs")) {
          String blob = bl.path("blob").asText();
          String dom = bl.path("domain").asText();
          b.append(String.format(Locale.ROOT, "  %-10s %-20s %12s %12s %6.1f%%  %s%n",
              dom.length() > 10 ? dom.substring(0, 9) + "~" : dom, blob.length() > 20 ? blob.substring(0, 19) + "~" : blob,
              bytes(bl.path("size").asLong()), bytes(bl.path("cachedBytes").asLong()),
              100 * bl.path("cachedFraction").asDouble(), bl.path("inUse").asBoolean() ? "yes" : "no"));
        }
      }
    }
    return b.toString();
  }

  static String bytes(long n) {
    if (n < 0) {
      return "?";
    }
    if (n < 1024) {
      return n + " B";
    }
    if (n < 1024 * 1024) {
      return String.format(Locale.ROOT, "%.1f KiB", n / 1024.0);
    }
    if (n < 1024L * 1024 * 1024) {
      return String.format(Locale.ROOT, "%.1f MiB", n / 1048576.0);
    }
    return String.format(Locale.ROOT, "%.2f GiB", n / 1073741824.0);
  }
}
