package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TreeDiff;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Cached ranges persist in the shim's cache directory across restarts of shim and daemon. */
class CacheSurvivesRestartTest {
  @TempDir Path tmp;

  @Test
  void restartedShimAndDaemon_serveCachedRangesWithoutFetching() throws Exception {
    Requirements.assumeFuse();
    Path src = Files.createDirectories(tmp.resolve("src"));
    Random rnd = new Random(3);
    for (int i = 0; i < 20; i++) {
      byte[] b = new byte[rnd.nextInt(600_000) + 1];
      rnd.nextBytes(b);
      Files.write(src.resolve("f" + i), b);
    }
    Path blobs = tmp.resolve("backend");
    MkfsResult image = Cluster.buildImage(src, blobs, Layout.CHUNKED);
    Path dir = tmp.resolve("cluster");

    try (Cluster first = new Cluster(dir, "file://" + blobs).startShim().startDaemon()) {
      Path mnt = first.mount(image.fsid());
      TreeDiff.assertSame(src, mnt, TreeDiff.options().root(false));
    }

    // Every byte the backend could now hand out is wrong: a fetch would fail its digest check.
    Path data = image.dataBlob().orElseThrow().path();
    byte[] garbage = new byte[(int) Files.size(data)];
    rnd.nextBytes(garbage);
    Files.write(data, garbage);

    try (Cluster second = new Cluster(dir, "file://" + blobs).startShim().startDaemon()) {
      Path mnt = second.mount(image.fsid());
      TreeDiff.assertSame(src, mnt, TreeDiff.options().root(false));
      second.close(); // the daemon logs its counters when it stops
      String log = second.daemonLog();
      assertThat(log).doesNotContain("sha256 mismatch");
      assertThat(log).as(log).contains("stopped:");
      assertThat(log.lines().filter(l -> l.contains("stopped:")).reduce((a, b) -> b).orElseThrow())
          .contains("bytesFetched=0");
    }
  }
}
