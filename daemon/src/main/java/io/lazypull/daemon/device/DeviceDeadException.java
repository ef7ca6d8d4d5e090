package io.lazypull.daemon.device;

import java.io.IOException;

/** The device is gone for good (the shim exited, the cache went DEAD): stop serving. */
public final class DeviceDeadException extends IOException {
  private static final long serialVersionUID = 1L;

  public DeviceDeadException(String message) {
    super(message);
  }

  public DeviceDeadException(String message, Throwable cause) {
    super(message, cause);
  }
}
