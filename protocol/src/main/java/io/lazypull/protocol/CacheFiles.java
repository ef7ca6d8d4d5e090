package io.lazypull.protocol;

/** Constants of the cachefiles on-demand interface (include/uapi/linux/cachefiles.h). */
public final class CacheFiles {
  /** The misc device. Exclusive: a second open fails with EBUSY. */
  public static final String DEVICE_PATH = "/dev/cachefiles";

  /**
   * {@code CACHEFILES_IOC_READ_COMPLETE = _IOW(0x98, 1, int)}, with the msg_id passed by value.
   * 0x40049801 with the asm-generic ioctl encoding (x86, arm, arm64, riscv, s390).
   */
  public static final long IOC_READ_COMPLETE = 0x40049801L;

  /** Volume keys EROFS registers are {@code "erofs," + (domain_id or fsid)}. */
  public static final String EROFS_VOLUME_PREFIX = "erofs,";

  /** Writes into an object go through direct I/O: page-aligned offsets, whole blocks. */
  public static final int PAGE_SIZE = 4096;

  private CacheFiles() {}

  /** The EROFS domain (or fsid) of a volume key, or null if it is not an EROFS volume. */
  public static String erofsDomain(String volumeKey) {
    return volumeKey.startsWith(EROFS_VOLUME_PREFIX) ? volumeKey.substring(EROFS_VOLUME_PREFIX.length()) : null;
  }
}
