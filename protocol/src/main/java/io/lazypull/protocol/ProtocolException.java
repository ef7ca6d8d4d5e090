package io.lazypull.protocol;

import java.io.IOException;

/** Bytes that do not form a valid on-demand message or command. */
public final class ProtocolException extends IOException {
  private static final long serialVersionUID = 1L;

  public ProtocolException(String message) {
    super(message);
  }
}
