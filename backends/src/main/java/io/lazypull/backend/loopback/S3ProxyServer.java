package io.lazypull.backend.loopback;

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
 * S3Proxy in this JVM on 127.0.0.1 with SigV4 authentication and a jclouds "filesystem" store,
 * for tests and benchmarks that need a real S3 server on loopback. S3Proxy is a provided
 * dependency (not in lazypull.jar): check that its classes load (without loading this class,
 * whose verification needs them) before touching this one.
 */
public final class S3ProxyServer implements AutoCloseable {
  private final Path dir;
  private final boolean deleteOnClose;
  private final BlobStoreContext context;
  private final S3Proxy proxy;
  private final String identity;
  private final String credential;

  private S3ProxyServer(Path dir, boolean deleteOnClose, BlobStoreContext context, S3Proxy proxy,
      String identity, String credential) {
    this.dir = dir;
    this.deleteOnClose = deleteOnClose;
    this.context = context;
    this.proxy = proxy;
    this.identity = identity;
    this.credential = credential;
  }

  /** Starts a server storing objects under {@code dir}, which it leaves in place. */
  public static S3ProxyServer start(Path dir, String identity, String credential) throws Exception {
    return start(dir, false, identity, credential);
  }

  /** Starts a server storing objects in a fresh temporary directory, removed on close. */
  public static S3ProxyServer startInTempDir(String identity, String credential) throws Exception {
    return start(Files.createTempDirectory("lazypull-s3proxy-"), true, identity, credential);
  }

  private static S3ProxyServer start(Path dir, boolean deleteOnClose, String identity, String credential)
      throws Exception {
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
    return new S3ProxyServer(dir, deleteOnClose, context, proxy, identity, credential);
  }

  public void createBucket(String bucket) {
    context.getBlobStore().createContainerInLocation(null, bucket);
  }

  public int port() {
    return proxy.getPort();
  }

  public String endpoint() {
    return "http://127.0.0.1:" + port();
  }

  public String identity() {
    return identity;
  }

  public String credential() {
    return credential;
  }

  /** s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&region=us-east-1&path-style=true */
  public String uri(String bucketAndPrefix, int port) {
    return "s3://" + bucketAndPrefix + "?endpoint=http://127.0.0.1:" + port + "&region=us-east-1&path-style=true";
  }

  public String uri(String bucketAndPrefix) {
    return uri(bucketAndPrefix, port());
  }

  @Override
  public void close() throws Exception {
    try {
      proxy.stop();
    } finally {
      context.close();
      if (deleteOnClose) {
        try (Stream<Path> s = Files.walk(dir)) {
          s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
          // best effort
        }
      }
    }
  }
}
