package io.lazypull.shim.ondemand;

import io.lazypull.protocol.MessageCodec;

/**
 * A cache object: one per (volume key, cookie key) and device generation, the kernel's
 * {@code cachefiles_object} with its {@code cachefiles_ondemand_info}. Only {@link
 * OndemandCache} changes it, under its lock; FUSE threads read the volatile fields.
 */
public final class CacheObject {
  /** {@code objectId} of an object that was never opened. */
  public static final int ID_NEVER = 0;
  /** {@code objectId} of an object whose anon socket closed: {@code CACHEFILES_ONDEMAND_ID_CLOSED}. */
  public static final int ID_CLOSED = -1;

  final String volumeKey;
  final String cookieKey;
  final Generation generation;

  volatile ObjectState state = ObjectState.CLOSE;
  /** {@link #ID_NEVER}, {@link #ID_CLOSED}, or the live object_id (its anon socket is open). */
  volatile int objectId = ID_NEVER;
  /** The size of the last successful copen, -1 before it. */
  volatile long size = -1;
  /** The cache file, from the first delivered OPEN on. */
  volatile StoreFile file;

  /** The pending OPEN (a lookup's first open or a re-open), at most one. */
  PendingRequest pendingOpen;
  /** The pending CLOSE, if one was queued. */
  PendingRequest closeRequest;
  /** Open FUSE handles. */
  int users;

  CacheObject(String volumeKey, String cookieKey, Generation generation) {
    this.volumeKey = volumeKey;
    this.cookieKey = cookieKey;
    this.generation = generation;
  }

  public String volumeKey() {
    return volumeKey;
  }

  public String cookieKey() {
    return cookieKey;
  }

  public ObjectState state() {
    return state;
  }

  public int objectId() {
    return objectId;
  }

  /** The object's size as the daemon gave it in {@code copen}, or -1 if it has none yet. */
  public long size() {
    return size;
  }

  public StoreFile file() {
    return file;
  }

  /** True once the object's device generation is dead: its reads fail with EIO for good. */
  public boolean isDead() {
    return generation.dead;
  }

  /** "erofs,dom/blob" with unprintable bytes escaped, for logs. */
  public String describe() {
    String v = MessageCodec.printable(volumeKey);
    String c = MessageCodec.printable(cookieKey);
    return v.substring(1, v.length() - 1) + "/" + c.substring(1, c.length() - 1);
  }

  @Override
  public String toString() {
    return "object " + describe() + "{id=" + objectId + ", " + state + ", size=" + size + ", "
        + generation + "}";
  }
}
