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
    try (S3Image s3 = S3Image.start(tmp.resolve("s3"), "e2e")) {
      MkfsResult image = s3.publish(JDK_LIB, Layout.CHUNKED, tmp.resolve("local"));
      String uri = s3.uri;
      Map<String, String> creds = s3.creds;
      try (Cluster cluster = new Cluster(tmp.resolve("cluster"), uri)) {
        cluster.stack.env.putAll(creds);
        cluster.startHolder().startShim().startDaemon();
        Path mnt = cluster.mount(image.fsid());
        TreeDiff.assertSame(JDK_LIB, mnt, TreeDiff.options().root(false));
      }
    }
  }
}
