package io.lazypull.cli;

import java.net.URI;
import java.nio.file.Path;
import java.util.Properties;
import org.gaul.s3proxy.AuthenticationType;
import org.gaul.s3proxy.S3Proxy;
import org.jclouds.ContextBuilder;
import org.jclouds.blobstore.BlobStoreContext;

/**
 * S3Proxy in this JVM on 127.0.0.1 with SigV4 authentication and a jclouds filesystem store
 * under a given directory. S3Proxy is not in the shipped jar (it is a provided dependency):
 * only touch this class after {@link BenchBackendsCommand#s3ProxyPresent()} said yes.
 */
final class S3ProxyLauncher implements AutoCloseable {
  private final BlobStoreContext context;
  private final S3Proxy proxy;
  final String identity;
  final String credential;

  private S3ProxyLauncher(BlobStoreContext context, S3Proxy proxy, String identity,
      String credential) {
    this.context = context;
    this.proxy = proxy;
    this.identity = identity;
    this.credential = credential;
  }

  static S3ProxyLauncher start(Path dir, String identity, String credential) throws Exception {
    Properties props = new Properties();
    props.setProperty("jclouds.filesystem.basedir", dir.toString());
    BlobStoreContext context = ContextBuilder.newBuilder("filesystem")
        .credentials("unused", "unused").overrides(props).build(BlobStoreContext.class);
    S3Proxy proxy = S3Proxy.builder()
        .blobStore(context.getBlobStore())
        .endpoint(URI.create("http://127.0.0.1:0"))
        .awsAuthentication(AuthenticationType.AWS_V2_OR_V4, identity, credential)
        .build();
    proxy.start();
    for (int i = 0; i < 400 && !proxy.getState().equals("STARTED"); i++) {
      Thread.sleep(25);
    }
    if (!proxy.getState().equals("STARTED")) {
      proxy.stop();
      context.close();
      throw new IllegalStateException("S3Proxy did not start: " + proxy.getState());
    }
    return new S3ProxyLauncher(context, proxy, identity, credential);
  }

  /** S3Proxy, Jetty and jclouds log at INFO; benchmark tables and test logs need none of it. */
  static void quietServerLogs() {
    for (String name : new String[] {"org.gaul", "org.jclouds", "jclouds", "org.eclipse.jetty", "org.gaul.shaded"}) {
      org.slf4j.Logger l = org.slf4j.LoggerFactory.getLogger(name);
      if (l instanceof ch.qos.logback.classic.Logger lb) {
        lb.setLevel(ch.qos.logback.classic.Level.WARN);
      }
    }
  }

  void createBucket(String bucket) {
    context.getBlobStore().createContainerInLocation(null, bucket);
  }

  int port() {
    return proxy.getPort();
  }

  /** s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&region=us-east-1&path-style=true */
  String uri(String bucketAndPrefix) {
    return "s3://" + bucketAndPrefix + "?endpoint=http://127.0.0.1:" + port()
        + "&region=us-east-1&path-style=true";
  }

  @Override
  public void close() {
    try {
      proxy.stop();
    } catch (Exception e) {
      throw new IllegalStateException("S3Proxy did not stop", e);
    } finally {
      context.close();
    }
  }
}
