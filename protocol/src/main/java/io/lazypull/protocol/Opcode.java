package io.lazypull.protocol;

/** {@code enum cachefiles_opcode} (include/uapi/linux/cachefiles.h). */
public enum Opcode {
  /** A cookie is looked up: answer with {@code copen}. */
  OPEN(0),
  /** The netfs let go of the cookie: close the anon fd. No reply. */
  CLOSE(1),
  /** A cache miss: fill the range through the anon fd, then complete it with the ioctl. */
  READ(2);

  private final int code;

  Opcode(int code) {
    this.code = code;
  }

  public int code() {
    return code;
  }

  /** The opcode for a wire value, or null if the kernel might send it but we do not know it. */
  public static Opcode of(int code) {
    for (Opcode op : values()) {
      if (op.code == code) {
        return op;
      }
    }
    return null;
  }
}
