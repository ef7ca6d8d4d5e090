package io.lazypull.shim.ondemand;

/**
 * The shim's view of one delivered OPEN's anon fd: the object_id it was given and the OPEN it
 * answers. The socket itself belongs to the device server; its EOF is {@link
 * OndemandCache#anonClosed}.
 */
public final class Anon {
  final int objectId;
  final CacheObject object;
  final PendingRequest open;
  boolean closed;

  Anon(int objectId, CacheObject object, PendingRequest open) {
    this.objectId = objectId;
    this.object = object;
    this.open = open;
  }

  public int objectId() {
    return objectId;
  }

  public CacheObject object() {
    return object;
  }

  @Override
  public String toString() {
    return "anon of object " + objectId + " (" + object.describe() + ")" + (closed ? " closed" : "");
  }
}
