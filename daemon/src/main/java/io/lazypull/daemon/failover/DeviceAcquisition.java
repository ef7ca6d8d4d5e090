package io.lazypull.daemon.failover;

import io.lazypull.daemon.device.Device;
import java.io.IOException;
import java.nio.file.Path;
import java.util.OptionalInt;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a daemon gets its device at start-up, the one place failover begins:
 *
 * <ol>
 *   <li>a holder ({@code --holder PATH}) or systemd's fd store has a device: adopt it, write
 *       {@code restore} exactly once (every pending request is delivered again), serve. Never
 *       bind a held device again.
 *   <li>nobody holds one: open and bind a new device, and give a copy to the holder / the fd
 *       store at once, so that from now on the device outlives this process.
 * </ol>
 */
public final class DeviceAcquisition {
  private static final Logger log = LoggerFactory.getLogger(DeviceAcquisition.class);
  /** How long a non-standby daemon waits for a dying predecessor to let go of the lease. */
  public static final long TAKE_WAIT_MILLIS = 15_000;

  private DeviceAcquisition() {}

  /** Opens a fresh device, or adopts a held one (without binding). */
  public interface DeviceOpener {
    Device open() throws IOException;

    Device adopt(int fd) throws IOException;
  }

  /**
   * The device and how it was obtained.
   *
   * @param lease the holder connection to keep open for the daemon's whole life (null without a
   *     holder)
   * @param restored true if a held device was adopted and {@code restore} written
   */
  public record Acquired(Device device, HolderClient lease, boolean restored) {}

  /**
   * @param holder the holder's socket, or null
   * @param fdStore systemd's fd store, or null
   * @param standby wait (without limit) for the active daemon to die or hand over
   */
  public static Acquired acquire(DeviceOpener opener, Path holder, SystemdFdStore fdStore, boolean standby)
      throws IOException {
    if (holder != null) {
      HolderClient lease = HolderClient.connect(holder);
      try {
        if (standby) {
          log.info("standby: waiting for the active daemon to go away (holder {})", holder);
        }
        OptionalInt held = lease.take(standby ? -1 : TAKE_WAIT_MILLIS);
        if (held.isPresent()) {
          return new Acquired(adoptAndRestore(opener, held.getAsInt(), "holder " + holder), lease, true);
        }
        Device device = opener.open();
        try {
          lease.put(device.fd());
        } catch (IOException e) {
          device.close();
          throw e;
        }
        log.info("bound a new device {}; holder {} keeps it across restarts", device.describe(), holder);
        return new Acquired(device, lease, false);
      } catch (IOException | RuntimeException e) {
        lease.close();
        throw e;
      }
    }
    if (fdStore != null) {
      OptionalInt held = fdStore.recover();
      if (held.isPresent()) {
        return new Acquired(adoptAndRestore(opener, held.getAsInt(), "systemd's fd store"), null, true);
      }
      Device device = opener.open();
      try {
        fdStore.store(device.fd());
      } catch (IOException e) {
        device.close();
        throw e;
      }
      return new Acquired(device, null, false);
    }
    if (standby) {
      throw new IllegalArgumentException("--standby needs a holder (--holder PATH)");
    }
    Device device = opener.open();
    log.warn("no holder (--holder) and no systemd fd store: if this daemon dies, reads in flight fail with EIO");
    return new Acquired(device, null, false);
  }

  private static Device adoptAndRestore(DeviceOpener opener, int fd, String from) throws IOException {
    Device device;
    try {
      device = opener.adopt(fd);
    } catch (IOException | RuntimeException e) {
      io.lazypull.sys.Posix.closeQuietly(fd);
      throw e;
    }
    try {
      device.restore();
    } catch (IOException e) {
      device.close();
      throw new IOException("restore on the device from " + from + " failed: " + e.getMessage(), e);
    }
    log.info("took over the device {} from {} and wrote restore", device.describe(), from);
    return device;
  }
}
