package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TreeDiff;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An image pushed to S3 (S3Proxy with SigV4 on loopback) and served from there. */
class S3EndToEndTest {
  private static final Path JDK_LIB = Path.of("/usr/lib/jvm/java-17-openjdk-amd64/lib");

  @TempDir Path tmp;

  @Test
  void pushedToS3_mountedThroughTheShim_everyFileMatches() throws Exception {
    Requirements.assumeFuse();
    Path local = tmp.resolve("local");
    MkfsResult image = Cluster.buildImage(JDK_LIB, local, Layout.CHUNKED);
    try (S3ProxyLauncher s3 = S3ProxyLauncher.start(Files.createDirectories(tmp.resolve("s3")), "lazy", "pull-secret")) {
      s3.createBucket("images");
      String uri = s3.uri("images/blobs/");
      Map<String, String> creds = Map.of("AWS_ACCESS_KEY_ID", s3.identity, "AWS_SECRET_ACCESS_KEY", s3.credential);
      int rc = Child.lazypull("push", "256m", java.util.List.of("push", "--backend", uri,
          local.resolve(image.fsid()).toString(), image.dataBlob().orElseThrow().path().toString()))
          .env(creds).start().process().waitFor();
      org.assertj.core.api.Assertions.assertThat(rc).isZero();

      try (Cluster cluster = new Cluster(tmp.resolve("cluster"), uri)) {
        cluster.stack.env.putAll(creds);
        cluster.startHolder().startShim().startDaemon();
        Path mnt = cluster.mount(image.fsid());
        TreeDiff.assertSame(JDK_LIB, mnt, TreeDiff.options().root(false));
      }
    }
  }
}
