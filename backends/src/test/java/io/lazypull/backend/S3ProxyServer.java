package io.lazypull.backend;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Properties;
import java.util.stream.Stream;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStoreContext;

/**
 * S3Proxy in this JVM on 127.0.0.1 with SigV4 authentication, storing objects in a fresh
 * directory (jclouds "filesystem"), removed again on close.
 */
final class S3ProxyServer implements AutoCloseable {
  static final String IDENTITY = "lazypull-test-access";
  static final String CREDENTIAL = "lazypull-test-secret-0123456789";

  private final Path dir;
  private final BlobStoreContext context;
  private final S3Proxy proxy;

  private S3ProxyServer(Path dir, BlobStoreContext context, S3Proxy proxy) {
    this.dir = dir;
    this.context = context;
    this.proxy = proxy;
  }

  static S3ProxyServer start() throws Exception {
    Path dir = Files.createTempDirectory("lazypull-s3proxy-");
    Properties props = new Properties();
    props.setProperty("jclouds.filesystem.basedir", dir.toString());
    BlobStoreContext context = ContextBuilder.newBuilder("filesystem")
        .credentials("unused", "unused")
        .overrides(props)
        .build(BlobStoreContext.class);
    S3Proxy proxy = S3Proxy.builder()
        .blobStore(context.getBlobStore())
        .endpoint(URI.create("http://127.0.0.1:0"))
        .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, IDENTITY, CREDENTIAL)
        .build();
    proxy.start();
    for (int i = 0; i < 200 && !proxy.getState().equals("STARTED"); i++) {
      Thread.sleep(25);
    }
    if (!proxy.getState().equals("STARTED")) {
      proxy.stop();
      context.close();
      throw new IllegalStateException("S3Proxy did not start: " + proxy.getState());
    }
    return new S3ProxyServer(dir, context, proxy);
  }

  int port() {
    return proxy.getPort();
  }

  String endpoint() {
    return "http://127.0.0.1:" + port();
  }

  void createBucket(String name) {
    context.getBlobStore().createContainerInLocation(null, name);
  }

  /** An s3:// URI for a bucket (and prefix) of this server. */
  String uri(String bucketAndPrefix, int port) {
    return "s3://" + bucketAndPrefix + "?endpoint=http://127.0.0.1:" + port
        + "&region=us-east-1&path-style=true";
  }

  String uri(String bucketAndPrefix) {
    return uri(bucketAndPrefix, port());
  }

  static BackendOptions.Builder options() {
    return BackendOptions.builder().credentials(new Credentials(IDENTITY, CREDENTIAL));
  }

  @Override
  public void close() {
    try {
      proxy.stop();
    } catch (Exception e) {
      throw new IllegalStateException("S3Proxy did not stop", e);
    } finally {
      context.close();
      try (Stream<Path> s = Files.walk(dir)) {
        s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      } catch (IOException ignored) {
        // Best effort.
      }
    }
  }
}
