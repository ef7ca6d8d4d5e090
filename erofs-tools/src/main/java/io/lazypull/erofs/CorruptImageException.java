package io.lazypull.erofs;

import java.io.IOException;

/**
 * The image breaks a rule of the format. The message names what and where, e.g.
 * "nid 42: dirent 3 nameoff 9000 beyond the directory block" or "superblock: bad magic".
 * The counterpart of the kernel's -EFSCORRUPTED.
 */
public class CorruptImageException extends IOException {
  private static final long serialVersionUID = 1L;

  public CorruptImageException(String message) {
    super(message);
  }
}
