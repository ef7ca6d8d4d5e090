package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.daemon.BackendBlobSource;
import io.lazypull.daemon.BlobSource;
import io.lazypull.daemon.Daemon;
import io.lazypull.daemon.DaemonConfig;
import io.lazypull.daemon.Domains;
import io.lazypull.daemon.failover.DeviceAcquisition;
import io.lazypull.daemon.failover.SystemdFdStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "daemon", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Serve on-demand reads: answer the device's OPEN, READ and CLOSE requests by fetching",
      "blob ranges from a backend into the local cache.",
      "",
      "The device is the kernel's /dev/cachefiles (--device kernel) or the fuse-shim",
      "(--device shim:SOCKET, see 'lazypull shim'). A mount names an image by its meta",
      "blob's sha256 (the fsid) and a domain; the daemon fetches the blobs of a domain from",
      "its backend (--domain NAME=URI) or the default one (--backend URI).",
      "",
      "Failover: with --holder PATH (see 'lazypull holder'), or under systemd with a file",
      "descriptor store, the device outlives the daemon. Kill the daemon at any moment and",
      "start the same command again: it takes the device back, writes 'restore', and every",
      "read in flight completes with the right bytes. With --standby it waits, started, and",
      "takes over the moment the active daemon dies (or on 'lazypull upgrade').",
      "",
      "A READ gets its data or, at the latest after --read-timeout, an error (the reader",
      "gets EIO), on every front end; the fetch goes on and fills the cache later. A",
      "backend that stops answering makes the reads that need it fail at once (no wait)",
      "until a background probe gets an answer again; then reads work again by themselves.",
    })
final class DaemonCommand implements Callable<Integer> {
  private static final Logger log = LoggerFactory.getLogger(DaemonCommand.class);

  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--device", required = true, paramLabel = "kernel|shim:PATH",
      description = "The device to serve: 'kernel' (/dev/cachefiles) or 'shim:SOCKET'.")
  String device;

  @Option(names = "--backend", paramLabel = "URI",
      description = "Backend for every domain not named by --domain: file:///DIR, "
          + "s3://BUCKET/PREFIX?endpoint=..., oci://HOST/REPO, oci+http://HOST:PORT/REPO.")
  String backend;

  @Option(names = "--domain", paramLabel = "NAME=URI",
      description = "Backend for one domain (repeatable).")
  List<String> domains = new ArrayList<>();

  @Option(names = "--holder", paramLabel = "PATH",
      description = "Holder socket: take the device from it (and restore), or bind one and give it to it.")
  Path holder;

  @Option(names = "--standby", description = "Wait for the active daemon to die or hand over, then take over.")
  boolean standby;

  @Option(names = "--cache-dir", paramLabel = "DIR", defaultValue = "/var/cache/lazypull",
      description = "Kernel mode: the cachefiles cache directory (default: ${DEFAULT-VALUE}).")
  Path cacheDir;

  @Option(names = "--state-dir", paramLabel = "DIR", defaultValue = "/var/lib/lazypull",
      description = "What outlives the daemon: piece digests of data blobs (default: ${DEFAULT-VALUE}).")
  Path stateDir;

  @Option(names = "--fetch-size", paramLabel = "BYTES", defaultValue = "4194304",
      description = "The largest fetch: a sequential reader's windows grow up to it, a random read fetches"
          + " only the pieces it touches (a multiple of 4096; default: ${DEFAULT-VALUE}).")
  int fetchSize;

  @Option(names = "--threads", paramLabel = "N", defaultValue = "16",
      description = "Concurrent fetches (default: ${DEFAULT-VALUE}).")
  int threads;

  @Option(names = "--prefetch", paramLabel = "all|list|none", defaultValue = "none",
      description = "list: when a blob the device opens has a prefetch list (the ranges its first reads"
          + " asked for, recorded in STATE-DIR/prefetch/ by the daemon that first served it; copy it to"
          + " other nodes), fetch those ranges at once, ahead of the reads; all: that, then the whole blob in"
          + " the background while no READ needs a fetch (READs always go first; a blob still being recorded"
          + " waits until its reads pause for 2 s, 30 s at most); none: only what is read. Lists are recorded"
          + " whatever this says (default: ${DEFAULT-VALUE}).")
  String prefetch;

  @Option(names = "--whole-blob-max", paramLabel = "BYTES", defaultValue = "67108864",
      description = "Blobs up to this size without piece digests (meta blobs) are fetched whole and"
          + " verified by their sha256 (default: ${DEFAULT-VALUE}).")
  long wholeBlobMax;

  @Option(names = "--read-timeout", paramLabel = "DURATION", defaultValue = "20s",
      converter = BackendArgs.DurationConverter.class,
      description = "Longest a READ waits for its data before it fails (the reader gets EIO), e.g. 500ms,"
          + " 20s, 1m; backend attempts and retries are fitted inside it (default: ${DEFAULT-VALUE}).")
  java.time.Duration readTimeout;

  @Option(names = "--stats-interval", paramLabel = "SECONDS", defaultValue = "60",
      description = "Log the counters every so often; 0: only at exit (default: ${DEFAULT-VALUE}).")
  int statsInterval;

  @picocli.CommandLine.Mixin OpsOptions ops = new OpsOptions();

  @Option(names = "--ready-file", paramLabel = "PATH",
      description = "Create this file once serving (for scripts that wait for the daemon).")
  Path readyFile;

  @Override
  public Integer call() throws Exception {
    Daemon.warmUpDigests(); // while the device, the holder and the backends are being opened
    DeviceSpec spec = DeviceSpec.parse(device);
    DaemonConfig config = config();
    Domains domainMap = domains(config);

    DeviceAcquisition.Acquired acquired = DeviceAcquisition.acquire(spec.opener(cacheDir), holder,
        holder == null ? SystemdFdStore.fromEnvironment() : null, standby);
    Daemon daemon = new Daemon(acquired.device(), domainMap, config, BlobIndexes.READER);
    if (acquired.lease() != null) {
      acquired.lease().onHandover(() -> {
        log.info("hand-over requested: finishing the requests already read, then exiting");
        daemon.stop();
      });
    }
    Thread hook = new Thread(() -> shutdown(daemon, acquired), "daemon-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    ScheduledExecutorService stats = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "stats");
      t.setDaemon(true);
      return t;
    });
    if (statsInterval > 0) {
      stats.scheduleAtFixedRate(() -> log.info("stats: {}", daemon.stats()), statsInterval, statsInterval,
          TimeUnit.SECONDS);
    }
    OpsServer server = ops.start(OpsViews.daemon(daemon, device));
    SystemdFdStore systemd = SystemdFdStore.fromEnvironment();
    if (systemd != null) {
      systemd.notifyReady();
    }
    if (readyFile != null) {
      Files.writeString(readyFile, ProcessHandle.current().pid() + "\n");
    }
    try {
      daemon.run();
    } finally {
      stats.shutdownNow();
      if (server != null) {
        server.close();
      }
    }
    // run() returned: a hand-over (stop). Answer what was read, close objects, let go.
    shutdown(daemon, acquired);
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // run() returned because a signal started the JVM's shutdown: the hook does the rest.
    }
    return 0;
  }

  private static void shutdown(Daemon daemon, DeviceAcquisition.Acquired acquired) {
    daemon.close(); // idempotent: answers what was read, closes anon fds, releases the device
    if (acquired.lease() != null) {
      try {
        acquired.lease().release();
      } catch (Exception e) {
        log.debug("release: {}", e.getMessage());
      }
      acquired.lease().close();
    }
  }

  /** The options as a config; a bad value is a usage error (exit 2). */
  private DaemonConfig config() throws java.io.IOException {
    DaemonConfig c;
    try {
      c = new DaemonConfig(fetchSize, threads, wholeBlobMax, null, readTimeout, DaemonConfig.Prefetch.parse(prefetch));
    } catch (IllegalArgumentException e) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    return c.withStateDir(Files.createDirectories(stateDir));
  }

  /** A backend with its clients made: a standby takes over ready, not at its first request. */
  private static io.lazypull.backend.BlobBackend connected(String uri, BackendOptions options) throws Exception {
    io.lazypull.backend.BlobBackend b = Backends.open(uri, options);
    try {
      b.connect();
    } catch (Exception | Error e) {
      b.close();
      throw e;
    }
    return b;
  }

  private Domains domains(DaemonConfig config) throws Exception {
    BackendOptions options = config.fitBackend(BackendOptions.defaults());
    BlobSource def = backend == null ? null : new BackendBlobSource(connected(backend, options));
    Map<String, BlobSource> named = new LinkedHashMap<>();
    List<String> all = new ArrayList<>(domains);
    if (Main.config != null) { // the config's domains, unless named here too
      Main.config.domains().forEach((name, uri) -> {
        if (domains.stream().noneMatch(d -> d.startsWith(name + "="))) {
          all.add(name + "=" + uri);
        }
      });
    }
    for (String d : all) {
      int eq = d.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("--domain must be NAME=URI, not '" + d + "'");
      }
      named.put(d.substring(0, eq), new BackendBlobSource(connected(d.substring(eq + 1), options)));
    }
    if (def == null && named.isEmpty()) {
      throw new IllegalArgumentException("give a backend: --backend URI and/or --domain NAME=URI");
    }
    return new Domains(def, named);
  }
}
