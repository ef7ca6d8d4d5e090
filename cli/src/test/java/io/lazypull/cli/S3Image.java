package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.MkfsResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * An image published the way users publish one: built with lazypull mkfs and uploaded with
 * {@code lazypull push} to S3 (S3Proxy in this JVM, SigV4 on, on 127.0.0.1).
 */
final class S3Image implements AutoCloseable {
  final io.lazypull.backend.loopback.S3ProxyServer s3;
  final String uri;
  final Map<String, String> creds;

  private S3Image(io.lazypull.backend.loopback.S3ProxyServer s3, String uri) {
    this.s3 = s3;
    this.uri = uri;
    this.creds = Map.of("AWS_ACCESS_KEY_ID", s3.identity(), "AWS_SECRET_ACCESS_KEY", s3.credential());
  }

  /** S3Proxy with a bucket; blobs go under {@code images/<prefix>/}. */
  static S3Image start(Path dir, String prefix) throws Exception {
    ServerLogs.quiet();
    io.lazypull.backend.loopback.S3ProxyServer s3 = io.lazypull.backend.loopback.S3ProxyServer.start(Files.createDirectories(dir), "lazy", "secret-" + prefix);
    s3.createBucket("images");
    return new S3Image(s3, s3.uri("images/" + prefix + "/"));
  }

  /** Builds an image of {@code source} in {@code layout} and pushes its blobs; the local copies are removed. */
  MkfsResult publish(Path source, Layout layout, Path scratch) throws Exception {
    MkfsResult image = Cluster.buildImage(source, scratch, layout);
    push(scratch.resolve(image.fsid()), image.dataBlob().orElseThrow().path());
    FailoverTest.run(List.of("rm", "-rf", scratch.toString()));
    return image;
  }

  void push(Path... files) throws Exception {
    List<String> args = new java.util.ArrayList<>(List.of("push", "--backend", uri));
    for (Path f : files) {
      args.add(f.toString());
    }
    Child push = Child.lazypull("push", "256m", args).env(creds).start();
    assertThat(push.process().waitFor()).as("lazypull push").isZero();
  }

  @Override
  public void close() throws Exception {
    s3.close();
  }
}
