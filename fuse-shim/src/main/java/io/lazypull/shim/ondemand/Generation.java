package io.lazypull.shim.ondemand;

/**
 * One bound device: from {@code bind ondemand} until the device socket's last copy closes.
 * Objects and requests belong to one generation; when it dies (the kernel's DEAD cache) they
 * fail with EIO for good, and only a fresh lookup after a new bind makes new objects.
 */
final class Generation {
  final int number;
  volatile boolean dead;

  Generation(int number) {
    this.number = number;
  }

  @Override
  public String toString() {
    return "generation " + number + (dead ? " (dead)" : "");
  }
}
