package io.lazypull.shim.ondemand;

import io.lazypull.protocol.Message;

/**
 * What one READ datagram hands out: a message, or the errno read(2) fails with. For an OPEN,
 * also the new anon and the cache file whose fd goes with it.
 */
public record Delivery(PendingRequest request, Message message, Anon anon, StoreFile file, int errno) {
  static Delivery failed(PendingRequest request, int errno) {
    return new Delivery(request, null, null, null, errno);
  }

  public boolean isFailure() {
    return errno != 0;
  }
}
