package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.loopback.FaultProxy;
import io.lazypull.backend.loopback.RegistryServer;
import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.sys.Fanotify;
import io.lazypull.testing.Requirements;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A registry that accepts connections and never answers: a reader of an image served from it
 * gets EIO within the daemon's read timeout (plus a margin), on the FUSE shim and on the
 * fanotify relay, and reads the right bytes again once the registry answers, with nothing
 * restarted. The registry is Debian's docker-registry on 127.0.0.1 behind a {@link FaultProxy}
 * that stalls every connection on demand.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class StalledBackendTest {
  /** The daemon's --read-timeout here (the default is 20 s). */
  static final int READ_TIMEOUT_SECONDS = 4;

  @TempDir static Path tmp;
  RegistryServer registry;
  FaultProxy proxy;

  @BeforeAll
  void start() throws Exception {
    Requirements.assumeRoot();
    Requirements.assumeCommand("docker-registry");
    registry = RegistryServer.open(Files.createDirectories(tmp.resolve("registry")));
    proxy = new FaultProxy(registry.port());
  }

  @AfterAll
  void stop() throws Exception {
    if (proxy != null) {
      proxy.close();
    }
    if (registry != null) {
      registry.close();
    }
  }

  @ParameterizedTest
  @EnumSource(value = Frontends.class, names = {"FUSE", "FANOTIFY"})
  void stalledRegistry_readerGetsEio_thenRightBytesOnceItAnswers(Frontends frontend) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve(frontend.name().toLowerCase()));
    if (frontend == Frontends.FANOTIFY) {
      String why = Fanotify.probePreContent(dir);
      Requirements.skipUnless(why == null, "needs fanotify pre-content events (Linux 6.14+): " + why);
    } else {
      Requirements.assumeFuse();
    }
    Path src = Files.createDirectories(dir.resolve("src"));
    Random rnd = new Random(frontend.ordinal());
    for (String name : List.of("a", "b")) {
      byte[] data = new byte[3 << 20];
      rnd.nextBytes(data);
      Files.write(src.resolve(name), data);
    }
    MkfsResult image = Cluster.buildImage(src, dir.resolve("blobs"), Layout.CHUNKED);
    String repo = "stall/" + frontend.name().toLowerCase();
    try (BlobBackend b = Backends.open(registry.uri(repo), BackendOptions.defaults())) {
      b.put(dir.resolve("blobs").resolve(image.fsid()));
      b.put(image.dataBlob().orElseThrow().path());
    }
    proxy.script(); // every connection passes
    try (Cluster cluster = new Cluster(dir.resolve("cluster"), "oci+http://127.0.0.1:" + proxy.port() + "/" + repo)) {
      cluster.stack.frontend(frontend);
      cluster.stack.daemonArgs.addAll(List.of("--read-timeout", READ_TIMEOUT_SECONDS + "s"));
      cluster.startHolder().startShim().startDaemon();
      Path mnt = cluster.mount(image.fsid()); // the meta blob is fetched now, the data blob is not
      long daemonPid = cluster.stack.daemon.pid();
      try {
        proxy.always(FaultProxy.Fault.STALL);
        proxy.dropConnections(); // pooled connections too: every request from now on stalls

        Reader stalled = cat(mnt.resolve("a"));
        System.out.printf("%s: a stalled read ended after %d ms: %s%n", frontend, stalled.millis, stalled.stderr);
        assertThat(stalled.exit).as("cat of a file whose data does not come").isNotZero();
        assertThat(stalled.stderr).contains("Input/output error");
        assertThat(cluster.daemonLog()).contains("no data within the read timeout (" + READ_TIMEOUT_SECONDS * 1000 + " ms)")
            .contains("is not answering");

        Reader other = cat(mnt.resolve("b")); // the backend is known to be down: fails at once
        System.out.printf("%s: a read while it is down ended after %d ms: %s%n", frontend, other.millis, other.stderr);
        assertThat(other.exit).isNotZero();
        assertThat(other.stderr).contains("Input/output error");

        // Still stalled when the first probe runs: it gets no answer either, and the breaker stays open.
        for (int i = 0; i < 600 && !cluster.daemonLog().contains("is still not answering"); i++) {
          Thread.sleep(100);
        }
        assertThat(cluster.daemonLog()).contains("is still not answering");

        proxy.script(); // it answers again (stalled connections stay stalled until the client gives up)
        long t0 = System.nanoTime();
        String want = sha256(Files.readAllBytes(src.resolve("a")));
        String got = null;
        int eios = 0;
        while (got == null && System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(60)) {
          try {
            got = sha256(Files.readAllBytes(mnt.resolve("a")));
          } catch (java.io.IOException e) {
            assertThat(e.getMessage()).contains("Input/output error");
            eios++;
            Thread.sleep(200);
          }
        }
        System.out.printf("%s: after the stall: right bytes after %d ms (%d reads got EIO first)%n", frontend,
            (System.nanoTime() - t0) / 1_000_000, eios);
        assertThat(got).as("the same file, once the registry answers").isEqualTo(want);
        assertThat(sha256(Files.readAllBytes(mnt.resolve("b")))).isEqualTo(sha256(Files.readAllBytes(src.resolve("b"))));
        assertThat(cluster.daemonLog()).contains("answers again");
        assertThat(cluster.stack.daemon.pid()).as("the same daemon").isEqualTo(daemonPid);
        assertThat(cluster.stack.daemon.isAlive()).isTrue();
      } finally {
        proxy.script();
        System.out.println(cluster.daemonLog().lines().filter(l -> l.contains("WARN") || l.contains("answer"))
            .map(l -> l.length() > 300 ? l.substring(0, 300) : l).collect(java.util.stream.Collectors.joining("\n")));
      }
    }
  }

  /** A reader process's outcome. */
  record Reader(int exit, String stderr, long millis) {}

  /** Runs {@code cat FILE > /dev/null}; a hang guard of the read timeout plus a generous margin. */
  private static Reader cat(Path file) throws Exception {
    long t0 = System.nanoTime();
    Process cat = new ProcessBuilder("cat", file.toString()).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    boolean ended = cat.waitFor(READ_TIMEOUT_SECONDS + 60, TimeUnit.SECONDS);
    long ms = (System.nanoTime() - t0) / 1_000_000;
    if (!ended) {
      cat.destroyForcibly();
    }
    assertThat(ended).as("the reader is still blocked after %d ms", ms).isTrue();
    return new Reader(cat.exitValue(), new String(cat.getErrorStream().readAllBytes()).strip(), ms);
  }

  private static String sha256(byte[] data) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
  }
}
