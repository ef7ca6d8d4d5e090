package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import io.lazypull.testing.Requirements;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * 'lazypull up' with --metrics-address: the metrics scraped over TCP (127.0.0.1) and parsed by
 * the Prometheus project's own Python client parser (Debian's python3-prometheus-client), the
 * values moving as files are read, a killed daemon counted; 'lazypull status' and 'lazypull gc'
 * on the ops socket.
 */
class OpsEndpointTest {
  /** Parses the exposition on stdin with prometheus_client and prints {"name{k=v,...}": value}. */
  private static final String PARSER = String.join("\n",
      "import json, sys",
      "from prometheus_client.parser import text_string_to_metric_families",
      "out = {}",
      "for fam in text_string_to_metric_families(sys.stdin.read()):",
      "    for s in fam.samples:",
      "        key = s.name + '{' + ','.join(k + '=' + v for k, v in sorted(s.labels.items())) + '}'",
      "        out[key] = s.value",
      "print(json.dumps(out))");

  @TempDir Path tmp;

  @Test
  void metrics_parseWithPrometheusParser_andMoveWithReads_statusAndGcAnswer() throws Exception {
    Requirements.assumeFuse();
    Path src = Files.createDirectories(tmp.resolve("src"));
    Random rnd = new Random(5);
    for (int f = 0; f < 12; f++) {
      byte[] b = new byte[(1 + rnd.nextInt(3)) << 20];
      rnd.nextBytes(b);
      try (OutputStream out = Files.newOutputStream(src.resolve(String.format("f%02d", f)))) {
        out.write(b);
      }
    }
    String want = Readers.sums(src);
    Path blobs = tmp.resolve("backend");
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path target = Files.createDirectories(tmp.resolve("mnt"));
    Path cache = tmp.resolve("cache");
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    Child up = Child.lazypull("up", "256m", List.of("up", "--backend", "file://" + blobs, "--fsid", image.fsid(),
        "--cache-dir", cache.toString(), "--cache-size", "8M", "--metrics-address", "127.0.0.1:" + port,
        target.toString())).logTo(tmp.resolve("up.log")).start();
    try {
      Stack.await("the mount", () -> isErofs(target), up);
      String backend = "file://" + blobs;
      Map<String, Double> before = scrape(port);
      assertThat(before).containsKeys("lazypull_shim_reads_total{}", "lazypull_daemon_reads_total{}",
          "lazypull_cache_bytes{}", "lazypull_cache_limit_bytes{}", "lazypull_up_daemon_restarts_total{}",
          "lazypull_backend_up{backend=" + backend + "}", "lazypull_daemon_errors_total{kind=read_timeout}",
          "lazypull_backend_request_seconds_count{backend=" + backend + "}");
      assertThat(before.get("lazypull_cache_limit_bytes{}")).isEqualTo(8 << 20);
      assertThat(before.get("lazypull_backend_up{backend=" + backend + "}")).isEqualTo(1);

      assertThat(Readers.sums(target)).isEqualTo(want);
      Map<String, Double> after = scrape(port);
      for (String moved : List.of("lazypull_shim_reads_total{}", "lazypull_shim_served_bytes_total{}",
          "lazypull_cache_misses_total{}", "lazypull_daemon_reads_total{}", "lazypull_cache_evictions_total{}",
          "lazypull_backend_fetched_bytes_total{backend=" + backend + "}",
          "lazypull_backend_request_seconds_count{backend=" + backend + "}")) {
        assertThat(after.get(moved)).as(moved).isGreaterThan(before.get(moved));
      }
      // Every byte of the 12 files came from the backend (the cache is smaller than them).
      assertThat(after.get("lazypull_backend_fetched_bytes_total{backend=" + backend + "}"))
          .isGreaterThanOrEqualTo((double) image.dataBlob().orElseThrow().size());
      assertThat(after.get("lazypull_cache_bytes{}")).isLessThanOrEqualTo(8 << 20);

      // A killed daemon: up counts the restart, the shim the restore.
      JsonNode status = status(cache);
      int daemonPid = status.path("daemon").path("pid").asInt();
      Posix.kill(daemonPid, 9);
      Stack.await("the restart", () -> {
        try {
          return scrape(port).getOrDefault("lazypull_device_restores_total{}", 0.0) >= 1
              && status(cache).path("daemon").path("pid").asInt() != daemonPid;
        } catch (Exception e) {
          return false;
        }
      }, up);
      Map<String, Double> restarted = scrape(port);
      assertThat(restarted.get("lazypull_up_daemon_restarts_total{}")).isEqualTo(1);
      assertThat(restarted.get("lazypull_up_daemon_starts_total{}")).isEqualTo(2);

      status = status(cache);
      assertThat(status.path("frontend").asText()).isEqualTo("fuse");
      assertThat(status.path("mounts").get(0).path("fsid").asText()).isEqualTo(image.fsid());
      assertThat(status.path("up").path("daemonGeneration").asInt()).isEqualTo(2);
      assertThat(status.path("daemon").path("backends").get(0).path("health").asText()).isEqualTo("answering");
      JsonNode blobsNode = status.path("shim").path("cache").path("blobs");
      assertThat(blobsNode).hasSize(2); // the meta blob and the data blob
      for (JsonNode b : blobsNode) {
        assertThat(b.path("cachedFraction").asDouble()).isBetween(0.0, 1.0);
        assertThat(b.path("inUse").asBoolean()).isTrue();
      }
      String people = StatusCommand.render(status);
      System.err.println(people);
      assertThat(people).contains("front end   fuse", "mount       " + target, "generation 2 (1 restarts)",
          "answering", image.fsid().substring(0, 19));

      JsonNode gc = OpsViews.json().readTree(OpsClient.request(cache.resolve("run/lazypull.sock"), "POST", "/gc", 60_000));
      assertThat(gc.path("limitBytes").asLong()).isEqualTo(8 << 20);
      assertThat(gc.path("cacheBytes").asLong()).isLessThanOrEqualTo(8 << 20);
    } finally {
      up.stop(30);
      Mounts.unmountOrDetach(target);
    }
  }

  private static JsonNode status(Path cache) throws Exception {
    return OpsViews.json().readTree(OpsClient.request(cache.resolve("run/lazypull.sock"), "GET", "/status", 10_000));
  }

  /** GET /metrics over TCP, parsed by prometheus_client (a parse error fails the test). */
  private static Map<String, Double> scrape(int port) throws Exception {
    HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
        URI.create("http://127.0.0.1:" + port + "/metrics")).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(r.statusCode()).isEqualTo(200);
    assertThat(r.headers().firstValue("Content-Type").orElse("")).startsWith("text/plain; version=0.0.4");
    Process p = new ProcessBuilder("/usr/bin/python3", "-c", PARSER).redirectError(ProcessBuilder.Redirect.INHERIT)
        .start();
    try (OutputStream in = p.getOutputStream()) {
      in.write(r.body().getBytes(StandardCharsets.UTF_8));
    }
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as("the Prometheus parser accepts the exposition:\n" + r.body()).isZero();
    Map<String, Double> m = new HashMap<>();
    OpsViews.json().readTree(out).fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asDouble()));
    return m;
  }

  private static boolean isErofs(Path p) {
    try {
      Mounts.MountInfo mi = Mounts.mountInfo(p);
      return mi != null && mi.fsType().equals("erofs");
    } catch (java.io.IOException e) {
      return false;
    }
  }
}
