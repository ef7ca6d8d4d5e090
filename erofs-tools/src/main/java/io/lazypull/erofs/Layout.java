package io.lazypull.erofs;

/** How {@link Mkfs} lays an image out. */
public enum Layout {
  /** One self-contained image: 4 KiB blocks, file data in the image, inline tails. */
  FULL("full"),
  /**
   * A meta blob plus one data blob: every non-empty regular file is chunk-based with 8-byte
   * indexes into device 1; identical chunks are stored once, all-zero chunks are holes.
   * 4 KiB blocks, as the kernel's cachefiles mode requires.
   */
  CHUNKED("chunked"),
  /**
   * The unmodified uncompressed tar is the data blob (device 1); each regular file is one chunk
   * at its data offset in the tar. 512-byte blocks (kernel 6.4+, file-backed or loop mounts).
   */
  TAR_INDEX("tar-index");

  private final String cliName;

  Layout(String cliName) {
    this.cliName = cliName;
  }

  /** The name used on the command line: full, chunked, tar-index. */
  public String cliName() {
    return cliName;
  }

  public static Layout fromCliName(String name) {
    for (Layout l : values()) {
      if (l.cliName.equals(name)) {
        return l;
      }
    }
    throw new IllegalArgumentException("unknown layout '" + name + "' (full, chunked, tar-index)");
  }

  @Override
  public String toString() {
    return cliName;
  }
}
