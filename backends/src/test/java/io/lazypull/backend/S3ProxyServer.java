package io.lazypull.backend;

/**
 * The loopback S3Proxy for these tests, with fixed test credentials and a temporary store
 * removed on close.
 */
final class S3ProxyServer {
  static final String IDENTITY = "lazypull-test-access";
  static final String CREDENTIAL = "lazypull-test-secret-0123456789";

  private S3ProxyServer() {}

  static io.lazypull.backend.loopback.S3ProxyServer start() throws Exception {
    return io.lazypull.backend.loopback.S3ProxyServer.startInTempDir(IDENTITY, CREDENTIAL);
  }

  static BackendOptions.Builder options() {
    return BackendOptions.builder().credentials(new Credentials(IDENTITY, CREDENTIAL));
  }
}
