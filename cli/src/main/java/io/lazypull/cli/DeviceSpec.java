package io.lazypull.cli;

import io.lazypull.daemon.device.Device;
import io.lazypull.daemon.failover.DeviceAcquisition;
import io.lazypull.daemon.kernel.KernelDevice;
import io.lazypull.daemon.shim.ShimDevice;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The {@code --device} argument: {@code kernel} (/dev/cachefiles) or {@code shim:PATH} (the
 * fuse-shim's socket), as a way to open a fresh device or adopt a held one.
 */
record DeviceSpec(String kind, Path path) {
  static DeviceSpec parse(String spec) {
    if (spec.equals("kernel")) {
      return new DeviceSpec("kernel", null);
    }
    if (spec.startsWith("shim:") && spec.length() > 5) {
      return new DeviceSpec("shim", Path.of(spec.substring(5)));
    }
    throw new IllegalArgumentException("--device must be 'kernel' or 'shim:PATH', not '" + spec + "'");
  }

  DeviceAcquisition.DeviceOpener opener(Path cacheDir) {
    return new DeviceAcquisition.DeviceOpener() {
      @Override
      public Device open() throws IOException {
        return kind.equals("kernel") ? KernelDevice.open(cacheDir, "lazypull") : ShimDevice.connect(path);
      }

      @Override
      public Device adopt(int fd) throws IOException {
        return kind.equals("kernel") ? KernelDevice.adopt(fd) : ShimDevice.adopt(fd);
      }
    };
  }

  @Override
  public String toString() {
    return path == null ? kind : kind + ":" + path;
  }
}
