package io.lazypull.erofs.oci;

import java.io.IOException;

/** A source manifest, index or config that lazypull cannot use; the message says what is wrong. */
public class BadManifestException extends IOException {
  private static final long serialVersionUID = 1L;

  public BadManifestException(String message) {
    super(message);
  }
}
