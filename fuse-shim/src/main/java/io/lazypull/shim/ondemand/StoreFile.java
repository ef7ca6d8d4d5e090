package io.lazypull.shim.ondemand;

import java.nio.file.Path;

/**
 * An object's cache file, opened once (O_RDWR) and kept open for the shim's life: its fd is
 * passed with every OPEN of the object and serves the shim's own reads.
 */
public final class StoreFile {
  private final Path path;
  private final int fd;

  StoreFile(Path path, int fd) {
    this.path = path;
    this.fd = fd;
  }

  public Path path() {
    return path;
  }

  public int fd() {
    return fd;
  }

  @Override
  public String toString() {
    return path.toString();
  }
}
