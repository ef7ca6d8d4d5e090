package io.lazypull.backend;

import io.lazypull.testing.Requirements;
import java.nio.file.Path;

/** The loopback docker-registry for these tests; they skip (with a reason) where it is not installed. */
final class RegistryServer {
  private RegistryServer() {}

  /** Skips the calling test (with a printed reason) when docker-registry is not installed. */
  static void assumeInstalled() {
    Requirements.assumeCommand("docker-registry");
  }

  static io.lazypull.backend.loopback.RegistryServer open(Path dir) throws Exception {
    assumeInstalled();
    return io.lazypull.backend.loopback.RegistryServer.open(dir);
  }

  static io.lazypull.backend.loopback.RegistryServer htpasswd(Path dir, String user, String password) throws Exception {
    assumeInstalled();
    Requirements.assumeCommand("htpasswd");
    return io.lazypull.backend.loopback.RegistryServer.htpasswd(dir, user, password);
  }

  static io.lazypull.backend.loopback.RegistryServer token(Path dir, TokenServer tokens) throws Exception {
    assumeInstalled();
    return io.lazypull.backend.loopback.RegistryServer.token(dir, tokens.realm(), TokenServer.SERVICE,
        TokenServer.ISSUER, tokens.certificatePem());
  }
}
