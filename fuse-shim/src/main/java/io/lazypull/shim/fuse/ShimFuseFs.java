package io.lazypull.shim.fuse;

import com.kenai.jffi.MemoryIO;
import io.lazypull.shim.ShimFiles;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import java.nio.ByteBuffer;
import java.util.List;
import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseFileInfo;

/**
 * The jnr-fuse binding: each callback converts native types and delegates to {@link
 * ShimFiles} in a line or two. jnr-fuse 0.5.8 pitfalls handled here (shared/notes/machine.md):
 * {@code keep_cache} is set through the raw struct (jnr declares the bitfield at the wrong
 * offset), the fsname is fixed, reads land straight in libfuse's buffer (a direct ByteBuffer
 * over its address, no heap copy), and no callback lets an exception escape into native code.
 *
 * <p>Files are 0400 and directories 0500, owned by root, checked by the kernel
 * ({@code default_permissions}): a raw blob holds every file of an image whatever their modes,
 * so only root may open one (the kernel's cachefiles files are root's too). An EROFS mount
 * opens them as root once; readers of any user then read through it ({@code allow_other}).
 */
final class ShimFuseFs extends FuseStubFS {
  static final String FS_NAME = "lazypull-shim";
  private static final Logger log = LoggerFactory.getLogger(ShimFuseFs.class);
  /** libfuse 2.9 x86_64 {@code struct fuse_file_info}: the bitfield word, keep_cache is bit 1. */
  private static final int FI_BITS_OFFSET = 20;
  private static final int FI_KEEP_CACHE = 1 << 1;

  private final ShimFiles files;
  private final long startSeconds = System.currentTimeMillis() / 1000;

  ShimFuseFs(ShimFiles files) {
    this.files = files;
  }

  @Override
  protected String getFSName() {
    return FS_NAME;
  }

  /**
   * Does nothing: {@link FuseShim#close} unmounts (busy mounts included). jnr-fuse calls this
   * only from a shutdown hook of its own, which runs concurrently with ours: its
   * {@code fusermount -u} raced our umount(2), and when it won, the FUSE loop had ended before
   * our hook looked, so a SIGTERM'd shim stopped without saying it unmounted.
   */
  @Override
  public void umount() {
  }

  @Override
  public int getattr(String path, FileStat stat) {
    try {
      ShimFiles.Attr a = files.getattr(path);
      if (a.directory()) {
        stat.st_mode.set(FileStat.S_IFDIR | 0500);
        stat.st_nlink.set(2);
      } else {
        stat.st_mode.set(FileStat.S_IFREG | 0400);
        stat.st_nlink.set(1);
        stat.st_size.set(a.size());
        stat.st_blocks.set((a.size() + 511) / 512);
      }
      stat.st_mtim.tv_sec.set(startSeconds);
      stat.st_ctim.tv_sec.set(startSeconds);
      stat.st_atim.tv_sec.set(startSeconds);
      return 0;
    } catch (ErrnoException e) {
      return -e.errno();
    } catch (RuntimeException e) {
      return unexpected("getattr", path, e);
    }
  }

  @Override
  public int readdir(String path, Pointer buf, FuseFillDir filler, long offset, FuseFileInfo fi) {
    try {
      List<String> names = files.readdir(path);
      filler.apply(buf, ".", null, 0);
      filler.apply(buf, "..", null, 0);
      for (String n : names) {
        if (filler.apply(buf, n, null, 0) != 0) {
          break;
        }
      }
      return 0;
    } catch (ErrnoException e) {
      return -e.errno();
    } catch (RuntimeException e) {
      return unexpected("readdir", path, e);
    }
  }

  @Override
  public int open(String path, FuseFileInfo fi) {
    try {
      fi.fh.set(files.open(path, fi.flags.get()));
      Pointer raw = Struct.getMemory(fi);
      raw.putInt(FI_BITS_OFFSET, raw.getInt(FI_BITS_OFFSET) | FI_KEEP_CACHE); // blobs are immutable
      return 0;
    } catch (ErrnoException e) {
      return -e.errno();
    } catch (RuntimeException e) {
      return unexpected("open", path, e);
    }
  }

  @Override
  public int read(String path, Pointer buf, long size, long offset, FuseFileInfo fi) {
    try {
      ByteBuffer dst = MemoryIO.getInstance().newDirectByteBuffer(buf.address(), (int) size);
      return files.read(fi.fh.get(), dst, offset);
    } catch (RuntimeException e) {
      return unexpected("read", path, e);
    }
  }

  @Override
  public int release(String path, FuseFileInfo fi) {
    try {
      files.release(fi.fh.get());
      return 0;
    } catch (RuntimeException e) {
      return unexpected("release", path, e);
    }
  }

  private static int unexpected(String op, String path, RuntimeException e) {
    log.error("FUSE {} {}: unexpected error", op, path, e);
    return -Errno.EIO;
  }
}
