package io.lazypull.shim.ondemand;

/** {@code enum cachefiles_object_state} (fs/cachefiles/internal.h, Linux 6.8+), minus DROPPING. */
public enum ObjectState {
  /** Never opened, or no usable id: its anon socket closed (daemon close or crash) or its CLOSE was delivered. */
  CLOSE,
  /** A {@code copen} succeeded and the object's anon socket is live: its READs are delivered. */
  OPEN,
  /** Was CLOSE; a READ caused a new OPEN that is not {@code copen}ed yet. Its READs are held back. */
  REOPENING
}
