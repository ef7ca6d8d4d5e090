package io.lazypull.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.daemon.BackendStats;
import io.lazypull.daemon.Daemon;
import io.lazypull.daemon.DaemonStats;
import io.lazypull.protocol.CacheFiles;
import io.lazypull.shim.CacheBudget;
import io.lazypull.shim.Shim;
import io.lazypull.shim.ShimStats;
import io.lazypull.shim.fanotify.FanotifyRelay;
import io.lazypull.shim.fanotify.RelayStats;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/*
 * Which process serves what (each on its own ops socket; 'up' serves all of them on one):
 *
 *   daemon      lazypull_daemon_* (READs, OPENs, errors by kind, in flight), lazypull_backend_*
 *               (requests, bytes, latency, up): reset when the daemon restarts (a counter reset)
 *   shim/relay  lazypull_shim_*, lazypull_fanotify_*, lazypull_cache_* (bytes, bound, evictions),
 *               lazypull_device_* (binds, restores: the failovers the shim saw); outlives daemons
 *   up          lazypull_up_* (daemon and relay restarts it made), then the shim's and the
 *               daemon's families, fetched from their sockets at each scrape
 */

/** The metrics and status each serving process exposes on its {@link OpsServer}. */
final class OpsViews {
  /** The views' mapper, made on first use: Jackson takes ~0.1 s to load, on a daemon's start. */
  static ObjectMapper json() {
    return Mapper.JSON;
  }

  private static final class Mapper {
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
  }

  private OpsViews() {}

  // ---------------------------------------------------------------- the daemon

  static OpsServer.Handler daemon(Daemon d, String device) {
    return new OpsServer.Handler() {
      @Override
      public String metrics() {
        return daemonMetrics(d).toString();
      }

      @Override
      public String status() throws Exception {
        return json().writeValueAsString(daemonStatus(d, device));
      }
    };
  }

  static PromText daemonMetrics(Daemon d) {
    DaemonStats s = d.stats();
    PromText p = new PromText()
        .counter("lazypull_daemon_reads_total", "READ requests completed, whatever the outcome.", s.reads())
        .counter("lazypull_daemon_cache_hits_total", "READs completed at once: the range was cached (re-deliveries).",
            s.cacheHits())
        .counter("lazypull_daemon_merged_reads_total", "READs that waited on a fetch another READ had started.",
            s.mergedReads())
        .counter("lazypull_daemon_opens_total", "OPEN requests answered with a size.", s.opens())
        .counter("lazypull_daemon_closes_total", "CLOSE requests handled.", s.closes())
        .counter("lazypull_daemon_written_bytes_total", "Bytes written into cache files.", s.bytesWritten())
        .family("lazypull_daemon_errors_total", "counter", "Failures by kind: read (a READ completed without data:"
            + " the reader gets EIO), read_timeout, failed_fast (backend known down), open, integrity (a digest"
            + " did not match), backend_outage (a backend stopped answering).", List.of(
                kind("lazypull_daemon_errors_total", "read", s.readFailures()),
                kind("lazypull_daemon_errors_total", "read_timeout", s.readTimeouts()),
                kind("lazypull_daemon_errors_total", "failed_fast", s.failedFast()),
                kind("lazypull_daemon_errors_total", "open", s.openFailures()),
                kind("lazypull_daemon_errors_total", "integrity", s.integrityFailures()),
                kind("lazypull_daemon_errors_total", "backend_outage", s.backendOutages())))
        .gauge("lazypull_daemon_inflight_requests", "Requests read from the device and not answered yet.", d.inFlight())
        .gauge("lazypull_daemon_open_objects", "Objects (blobs) the device has open.", d.openObjects().size());
    List<BackendStats> backends = d.backendStats();
    List<PromText.Sample> req = new ArrayList<>();
    List<PromText.Sample> err = new ArrayList<>();
    List<PromText.Sample> bytes = new ArrayList<>();
    List<PromText.Sample> up = new ArrayList<>();
    List<PromText.Sample> lat = new ArrayList<>();
    for (BackendStats b : backends) {
      String[] l = {"backend", b.backend()};
      req.add(new PromText.Sample("lazypull_backend_requests_total", l, b.requests()));
      err.add(new PromText.Sample("lazypull_backend_errors_total", l, b.errors()));
      bytes.add(new PromText.Sample("lazypull_backend_fetched_bytes_total", l, b.bytes()));
      up.add(new PromText.Sample("lazypull_backend_up", l, b.state().equals("closed") ? 1 : 0));
      lat.addAll(PromText.histogram("lazypull_backend_request_seconds", b.latencyBounds(), b.latencyCounts(),
          b.latencySeconds(), l));
    }
    return p.family("lazypull_backend_requests_total", "counter", "Backend requests made for READs.", req)
        .family("lazypull_backend_errors_total", "counter", "Backend requests that failed.", err)
        .family("lazypull_backend_fetched_bytes_total", "counter", "Bytes fetched from the backend.", bytes)
        .family("lazypull_backend_up", "gauge", "1 while the backend answers (its circuit breaker is closed).", up)
        .family("lazypull_backend_request_seconds", "histogram", "Latency of backend requests that answered.", lat);
  }

  private static PromText.Sample kind(String name, String kind, long v) {
    return new PromText.Sample(name, new String[] {"kind", kind}, v);
  }

  static ObjectNode daemonStatus(Daemon d, String device) {
    ObjectNode n = json().createObjectNode();
    n.put("pid", ProcessHandle.current().pid());
    n.put("device", device);
    n.put("inFlight", d.inFlight());
    n.set("stats", json().valueToTree(d.stats()));
    ArrayNode backends = n.putArray("backends");
    for (BackendStats b : d.backendStats()) {
      ObjectNode o = backends.addObject();
      o.put("backend", b.backend());
      o.put("health", b.state().equals("closed") ? "answering" : "not answering (" + b.state() + ")");
      o.put("requests", b.requests());
      o.put("errors", b.errors());
      o.put("bytes", b.bytes());
      o.put("meanLatencyMs", b.requests() == 0 ? 0 : Math.round(b.latencySeconds() * 1e6 / Math.max(1,
          b.latencyCounts().get(b.latencyCounts().size() - 1))) / 1000.0);
    }
    ArrayNode objects = n.putArray("openObjects");
    for (Daemon.OpenObject o : d.openObjects()) {
      objects.addObject().put("domain", o.domain()).put("blob", o.blob()).put("size", o.size());
    }
    return n;
  }

  // ---------------------------------------------------------------- the shim and the relay

  static OpsServer.Handler shim(Shim shim, FanotifyRelay relay, String mountpoint) {
    return new OpsServer.Handler() {
      @Override
      public String metrics() {
        return shimMetrics(shim, relay).toString();
      }

      @Override
      public String status() throws Exception {
        return json().writeValueAsString(shimStatus(shim, relay, mountpoint));
      }

      @Override
      public String gc() throws Exception {
        long freed = shim.budget().pass(true);
        ObjectNode n = json().createObjectNode();
        n.put("freedBytes", freed);
        n.put("cacheBytes", shim.budget().usedBytes());
        n.put("limitBytes", shim.budget().config().limitBytes());
        return json().writeValueAsString(n);
      }
    };
  }

  static PromText shimMetrics(Shim shim, FanotifyRelay relay) {
    ShimStats s = shim.stats();
    CacheBudget b = shim.budget();
    CacheBudget.Stats bs = b.stats();
    PromText p = new PromText();
    long hits;
    long misses;
    if (relay == null) {
      hits = s.cacheHits();
      misses = s.fuseReads() - s.cacheHits();
      p.counter("lazypull_shim_reads_total", "FUSE reads of blob files.", s.fuseReads())
          .counter("lazypull_shim_served_bytes_total", "Bytes served to FUSE reads.", s.bytesServed())
          .counter("lazypull_shim_lookups_total", "Lookups of blob files.", s.lookups());
    } else {
      RelayStats r = relay.stats();
      hits = r.cached();
      misses = r.fetched() + r.denied();
      p.counter("lazypull_fanotify_events_total", "Pre-content events read.", r.events())
          .counter("lazypull_fanotify_denied_total", "Events answered with EIO.", r.denied())
          .counter("lazypull_fanotify_marks_total", "Cache files marked for pre-content events.", r.marks())
          .counter("lazypull_fanotify_unmarks_total", "Complete cache files unmarked.", r.unmarks());
    }
    return p.counter("lazypull_cache_hits_total", "Reads (FUSE reads, fanotify events) whose range was cached.", hits)
        .counter("lazypull_cache_misses_total", "Reads that needed READ requests to the daemon.", misses)
        .counter("lazypull_shim_read_requests_total", "READ requests sent to the daemon.", s.readRequests())
        .counter("lazypull_shim_read_failures_total", "Reads that failed (the reader got EIO).", s.readFailures())
        .gauge("lazypull_shim_pending_requests", "Requests queued or delivered to the daemon, not completed.",
            shim.cache().pendingCount())
        .gauge("lazypull_device_bound", "1 while a daemon has the device bound.", shim.cache().isBound() ? 1 : 0)
        .counter("lazypull_device_binds_total", "Device generations: daemons that bound a new device.",
            shim.cache().generations())
        .counter("lazypull_device_restores_total", "Failovers: daemons that took the device over and wrote restore.",
            shim.cache().restores())
        .gauge("lazypull_cache_bytes", "Bytes cached (what SEEK_DATA finds in the cache files).", b.usedBytes())
        .gauge("lazypull_cache_limit_bytes", "The cache's bound (0: none).", b.config().limitBytes())
        .counter("lazypull_cache_evicted_bytes_total", "Bytes evicted.", bs.evictedBytes())
        .counter("lazypull_cache_evictions_total", "Windows evicted.", bs.evictedWindows())
        .counter("lazypull_cache_refetched_windows_total", "Evicted windows fetched again.", bs.refetchedWindows())
        .counter("lazypull_cache_removed_blobs_total", "Blobs removed (or emptied) because no mount used them.",
            bs.removedBlobs())
        .counter("lazypull_cache_throttled_reads_total", "Reads that waited for room in the cache.", bs.throttledReads())
        .counter("lazypull_cache_over_bound_total", "Reads that went over the bound: nothing could be evicted in time.",
            bs.overBound());
  }

  static ObjectNode shimStatus(Shim shim, FanotifyRelay relay, String mountpoint) {
    ObjectNode n = json().createObjectNode();
    n.put("pid", ProcessHandle.current().pid());
    n.put("frontend", relay == null ? "fuse" : "fanotify");
    if (mountpoint != null) {
      n.put("mountpoint", mountpoint);
    }
    ObjectNode dev = n.putObject("device");
    dev.put("bound", shim.cache().isBound());
    dev.put("generation", shim.cache().generations());
    dev.put("restores", shim.cache().restores());
    dev.put("pendingRequests", shim.cache().pendingCount());
    CacheBudget b = shim.budget();
    ObjectNode cache = n.putObject("cache");
    cache.put("dir", shim.cacheDir().toString());
    cache.put("bytes", b.usedBytes());
    cache.put("limitBytes", b.config().limitBytes());
    cache.put("windowBytes", b.config().window());
    cache.set("stats", json().valueToTree(Map.of("evictedBytes", b.stats().evictedBytes(), "evictions",
        b.stats().evictedWindows(), "refetchedWindows", b.stats().refetchedWindows(), "removedBlobs",
        b.stats().removedBlobs(), "overBound", b.stats().overBound())));
    ArrayNode blobs = cache.putArray("blobs");
    for (CacheBudget.BlobUsage u : b.blobs()) {
      ObjectNode o = blobs.addObject();
      String domain = CacheFiles.erofsDomain(u.volumeKey());
      o.put("domain", domain == null ? u.volumeKey() : domain);
      o.put("blob", u.cookieKey());
      o.put("size", u.size());
      o.put("cachedBytes", u.cachedBytes());
      o.put("cachedFraction", u.size() <= 0 ? 0 : Math.min(1.0, Math.round(1000.0 * u.cachedBytes() / u.size()) / 1000.0));
      o.put("inUse", u.inUse());
    }
    if (relay != null) {
      ArrayNode mounts = n.putArray("mounts");
      for (Map.Entry<String, String> m : relay.mountedImages()) {
        mounts.addObject().put("target", m.getKey()).put("fsid", Path.of(m.getValue()).getFileName().toString());
      }
    }
    return n;
  }

  // ---------------------------------------------------------------- up

  /** up's own counters, then its children's metrics and status, fetched from their sockets. */
  static OpsServer.Handler up(Stack stack) {
    return new OpsServer.Handler() {
      @Override
      public String metrics() {
        PromText p = new PromText()
            .counter("lazypull_up_daemon_starts_total", "Daemons up started (the first and every restart).",
                stack.daemonStarts)
            .counter("lazypull_up_daemon_restarts_total", "Daemons that died and were started again.",
                stack.daemonRestarts)
            .counter("lazypull_up_relay_restarts_total", "fanotify relays that died and were started again.",
                stack.relayRestarts)
            .gauge("lazypull_up_daemon_running", "1 while the daemon process runs.",
                stack.daemon != null && stack.daemon.isAlive() ? 1 : 0);
        if (stack.hasShim()) {
          p.append(child(stack.shimOps, "/metrics"));
        }
        return p.append(child(stack.daemonOps, "/metrics")).toString();
      }

      @Override
      public String status() throws Exception {
        ObjectNode n = json().createObjectNode();
        n.put("frontend", stack.frontend().name().toLowerCase(java.util.Locale.ROOT));
        n.put("cacheDir", stack.dir.toString());
        ArrayNode mounts = n.putArray("mounts");
        stack.mounted.forEach((target, image) -> mounts.addObject().put("target", target.toString())
            .put("fsid", image[0]).put("domain", image[1]));
        ObjectNode up = n.putObject("up");
        up.put("pid", ProcessHandle.current().pid());
        up.put("daemonGeneration", stack.daemonStarts);
        up.put("daemonRestarts", stack.daemonRestarts);
        up.put("relayRestarts", stack.relayRestarts);
        n.set("daemon", childStatus(stack.daemonOps));
        if (stack.hasShim()) {
          n.set(stack.frontend() == Frontends.FANOTIFY ? "relay" : "shim", childStatus(stack.shimOps));
        }
        return json().writeValueAsString(n);
      }

      @Override
      public String gc() throws Exception {
        return !stack.hasShim() ? null : OpsClient.request(stack.shimOps, "POST", "/gc", 60_000);
      }
    };
  }

  /** A child's metrics; empty while it does not answer (a daemon restarting). */
  private static String child(Path socket, String path) {
    try {
      return OpsClient.request(socket, "GET", path, 3000);
    } catch (java.io.IOException e) {
      return "";
    }
  }

  private static com.fasterxml.jackson.databind.JsonNode childStatus(Path socket) {
    try {
      return json().readTree(OpsClient.request(socket, "GET", "/status", 3000));
    } catch (java.io.IOException e) {
      ObjectNode n = json().createObjectNode();
      n.put("error", "not answering: " + e.getMessage());
      return n;
    }
  }
}
