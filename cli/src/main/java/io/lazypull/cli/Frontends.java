package io.lazypull.cli;

import io.lazypull.daemon.kernel.KernelDevice;
import io.lazypull.sys.Fanotify;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The three front ends that turn the kernel's reads into the daemon's READ requests, and how
 * {@code --frontend auto} picks one: the kernel's cachefiles on-demand mode where
 * /dev/cachefiles binds, else fanotify pre-content events where a probe group can mark a file,
 * else the FUSE shim.
 */
enum Frontends {
  /** The kernel's /dev/cachefiles in on-demand mode, EROFS in fscache mode. */
  KERNEL,
  /** The fanotify relay: EROFS file-backed on sparse cache files marked FAN_PRE_ACCESS. */
  FANOTIFY,
  /** The fuse-shim: EROFS file-backed on the shim's FUSE files. */
  FUSE;

  /** A choice and its one-line reason. */
  record Choice(Frontends frontend, String reason) {
    /** The line 'auto' prints. */
    String line() {
      return "front end: " + frontend.name().toLowerCase(java.util.Locale.ROOT) + " (" + reason + ")";
    }
  }

  static Frontends parse(String s) {
    switch (s) {
      case "kernel":
        return KERNEL;
      case "fanotify":
        return FANOTIFY;
      case "fuse":
        return FUSE;
      default:
        throw new IllegalArgumentException("--frontend must be kernel, fanotify, fuse or auto, not '" + s + "'");
    }
  }

  /**
   * For 'up': cachefiles on-demand if /dev/cachefiles exists and a bind in on-demand mode works
   * (a scratch cache in {@code scratch}, closed at once), else fanotify if a pre-content probe
   * in {@code scratch} works, else FUSE.
   */
  static Choice detect(Path scratch) throws IOException {
    String kernelWhy = probeKernel(scratch);
    if (kernelWhy == null) {
      return new Choice(KERNEL, "/dev/cachefiles binds in on-demand mode");
    }
    String fanotifyWhy = Fanotify.probePreContent(Files.createDirectories(scratch));
    if (fanotifyWhy == null) {
      return new Choice(FANOTIFY, "no cachefiles on-demand: " + kernelWhy + "; fanotify pre-content events work");
    }
    return new Choice(FUSE, "no cachefiles on-demand: " + kernelWhy + "; no fanotify pre-content events: " + fanotifyWhy);
  }

  /** Null if /dev/cachefiles binds in on-demand mode here, else why not. */
  static String probeKernel(Path scratch) {
    if (!Files.exists(Path.of("/dev/cachefiles"))) {
      return "/dev/cachefiles missing (kernel without CONFIG_CACHEFILES_ONDEMAND)";
    }
    Path dir = null;
    try {
      dir = Files.createTempDirectory(Files.createDirectories(scratch), ".cachefiles-probe");
      try (KernelDevice d = KernelDevice.open(dir, "lazypull-probe")) {
        return null;
      }
    } catch (IOException | RuntimeException e) {
      return "/dev/cachefiles does not bind: " + e.getMessage();
    } finally {
      if (dir != null) {
        try (var w = Files.walk(dir)) {
          w.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
          // a leftover scratch dir
        }
      }
    }
  }
}
