package io.lazypull.cli;

import io.lazypull.backend.BackendException;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.erofs.BlobIndex;
import io.lazypull.erofs.CorruptImageException;
import io.lazypull.erofs.ErofsImage;
import io.lazypull.erofs.ImageSource;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.util.List;

/** What is wrong with a meta blob, asked of its backend directly. */
final class MetaBlobs {
  /** Larger meta blobs are not fetched to find out (the daemon's --whole-blob-max default). */
  private static final long MAX = 64L << 20;

  private MetaBlobs() {}

  /**
   * Fetches meta blob {@code fsid} from {@code backendUri} whole and checks it as the daemon
   * and the mount do: its sha256, the EROFS superblock and root, the blob index. Returns what
   * fails, or null if nothing does (the failure was elsewhere, e.g. transient).
   */
  static String diagnose(String backendUri, String fsid) {
    try (BlobBackend b = Backends.open(backendUri, BackendOptions.builder().maxRetries(1).build())) {
      long size = b.size(fsid);
      if (size > MAX) {
        return null;
      }
      ByteArrayOutputStream bytes = new ByteArrayOutputStream((int) size);
      b.transferTo(fsid, Channels.newChannel(bytes)); // checks the sha256
      try (ImageSource src = ImageSource.of(bytes.toByteArray())) {
        ErofsImage.open(src, List.of());
        BlobIndex.read(src);
      } catch (CorruptImageException e) {
        return b.describe() + " has sha256:" + fsid + " but it is not a valid EROFS meta blob: " + e.getMessage();
      }
      return null;
    } catch (BackendException e) {
      return e.getMessage();
    } catch (IOException | RuntimeException e) {
      return null; // could not ask: the original error stands
    }
  }
}
