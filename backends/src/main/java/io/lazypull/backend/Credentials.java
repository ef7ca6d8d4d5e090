package io.lazypull.backend;

import java.util.Objects;

/**
 * A user name and a secret: for S3 the access key id and the secret access key, for a
 * registry the user name and the password (or a personal access token). {@link #toString()}
 * never shows the secret.
 */
public record Credentials(String username, String secret) {
  public Credentials {
    Objects.requireNonNull(username, "username");
    Objects.requireNonNull(secret, "secret");
  }

  @Override
  public String toString() {
    return "Credentials[username=" + username + ", secret=***]";
  }
}
