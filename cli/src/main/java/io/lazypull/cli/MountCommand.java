package io.lazypull.cli;

import io.lazypull.erofs.CorruptImageException;
import io.lazypull.erofs.ErofsImage;
import io.lazypull.erofs.ImageSource;
import io.lazypull.shim.fanotify.RelayClient;
import io.lazypull.sys.Errno;
import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Mounts;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "mount", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Mount an image served on demand, read-only.",
      "",
      "An image is named by its fsid, the sha256 of its meta blob. Over the fuse-shim",
      "(--shim DIR, the shim's mountpoint) the meta blob is DIR/<domain>/<fsid>: this",
      "command reads its device table through the shim and mounts it with mount(2),",
      "file-backed, with device=DIR/<domain>/<tag> for each data blob (no loop devices).",
      "Without --shim it mounts in the kernel's fscache mode",
      "(mount -t erofs none -o fsid=F[,domain_id=D]), which needs a kernel with",
      "CONFIG_EROFS_FS_ONDEMAND and 'lazypull daemon --device kernel' running.",
      "",
      "With --frontend fanotify --cache-dir DIR it asks the fanotify relay serving DIR",
      "('lazypull shim --frontend fanotify') for the meta blob, fetched whole, and for",
      "each data blob, a sparse cache file marked for pre-content events, then mounts the",
      "meta cache file with device= the data cache files. It refuses without the relay.",
      "--frontend auto: --shim given: fuse; /dev/cachefiles exists: kernel; --cache-dir",
      "given and pre-content events work: fanotify.",
      "",
      "The domain defaults to the fsid (the kernel's volume name when no domain_id is",
      "given); blobs shared by images of one domain are fetched and cached once.",
    })
final class MountCommand implements Callable<Integer> {
  private static final Pattern DIGEST = Pattern.compile("[0-9a-f]{64}");
  private static final Pattern DOMAIN = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._:+@-]{0,127}");

  @Option(names = "--frontend", paramLabel = "kernel|fuse|fanotify|auto",
      description = "How reads reach the daemon (default: fuse with --shim, fanotify with --cache-dir, else kernel).")
  String frontend;

  @Option(names = "--shim", paramLabel = "DIR", description = "The fuse-shim's mountpoint (--frontend fuse).")
  Path shim;

  @Option(names = "--cache-dir", paramLabel = "DIR",
      description = "The fanotify relay's cache directory (--frontend fanotify).")
  Path cacheDir;

  @Option(names = "--fsid", required = true, paramLabel = "DIGEST", description = "The image: its meta blob's sha256.")
  String fsid;

  @Option(names = "--domain", paramLabel = "NAME", description = "The image's domain (default: the fsid).")
  String domain;

  @Parameters(index = "0", paramLabel = "TARGET", description = "Where to mount it.")
  Path target;

  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    try {
      checkFsid(fsid);
      checkDomain(domain);
    } catch (IllegalArgumentException e) {
      throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    String dom = mountImage();
    System.out.println("mounted " + fsid + " (domain " + dom + ") on " + target);
    return 0;
  }

  /** The fsid without its "sha256:" prefix; anything but 64 lowercase hex digits is refused. */
  static String checkFsid(String fsid) {
    String id = fsid.startsWith("sha256:") ? fsid.substring(7) : fsid;
    if (!DIGEST.matcher(id).matches()) {
      throw new IllegalArgumentException("--fsid must be a sha256 hex digest (64 lowercase hex chars), not '" + fsid + "'");
    }
    return id;
  }

  /**
   * Refuses a domain that cannot be one everywhere it goes: a directory name under the shim
   * and the relay's cache, the kernel's domain_id= mount option, the daemon's --domain NAME=URI.
   */
  static void checkDomain(String domain) {
    if (domain != null && !DOMAIN.matcher(domain).matches()) {
      throw new IllegalArgumentException("--domain must be 1-128 characters of letters, digits and ._:+@-,"
          + " starting with a letter, digit or _, not '" + domain + "'");
    }
  }

  /** Mounts the image; returns the domain used. */
  String mountImage() throws Exception {
    String id = checkFsid(fsid);
    checkDomain(domain);
    if (!Files.isDirectory(target)) {
      throw new NoSuchFileException(target.toString(), null, "mount target is not a directory");
    }
    String dom = domain == null ? id : domain;
    switch (frontend()) {
      case KERNEL:
        try {
          Mounts.mountErofsFscache(id, domain, target);
        } catch (ErrnoException e) {
          if (e.errno() != Errno.EIO) {
            throw e;
          }
          // The kernel reads the meta blob through fscache during mount(2).
          throw new MetaBlobException(id, "cannot mount image " + id + " (" + e.getMessage() + "): reading its meta"
              + " blob failed; " + MetaBlobException.DAEMON_HINT, e);
        }
        break;
      case FUSE:
        if (shim == null) {
          throw new IllegalArgumentException("--frontend fuse needs --shim DIR (the shim's mountpoint)");
        }
        mountOverShim(id, dom);
        break;
      case FANOTIFY:
        if (cacheDir == null) {
          throw new IllegalArgumentException("--frontend fanotify needs --cache-dir DIR (the relay's cache directory)");
        }
        mountOverRelay(id, dom);
        break;
      default:
        throw new AssertionError();
    }
    return dom;
  }

  private Frontends frontend() {
    if (frontend == null) {
      return shim != null ? Frontends.FUSE : cacheDir != null ? Frontends.FANOTIFY : Frontends.KERNEL;
    }
    if (!frontend.equals("auto")) {
      return Frontends.parse(frontend);
    }
    Frontends.Choice c;
    if (shim != null) {
      c = new Frontends.Choice(Frontends.FUSE, "--shim given");
    } else if (Files.exists(Path.of("/dev/cachefiles"))) {
      c = new Frontends.Choice(Frontends.KERNEL, "/dev/cachefiles exists");
    } else if (cacheDir != null && io.lazypull.sys.Fanotify.probePreContent(cacheDir) == null) {
      c = new Frontends.Choice(Frontends.FANOTIFY, "no /dev/cachefiles; fanotify pre-content events work in " + cacheDir);
    } else {
      throw new IllegalArgumentException("--frontend auto: no /dev/cachefiles, " + (cacheDir == null
          ? "no --cache-dir for fanotify" : "no fanotify pre-content events in " + cacheDir) + ", no --shim for FUSE");
    }
    System.out.println(c.line());
    return c.frontend();
  }

  /**
   * The fanotify front end: the relay opens the meta blob and fetches it whole (EROFS reads
   * metadata through the page cache, which raises no events: a sparse meta fails the mount with
   * EINVAL), then each data blob, sparse and marked FAN_PRE_ACCESS before mount(2) opens it.
   */
  private void mountOverRelay(String id, String dom) throws IOException {
    try (RelayClient relay = RelayClient.connect(cacheDir)) {
      RelayClient.OpenedBlob meta;
      try {
        meta = relay.open(dom, id, true);
      } catch (ErrnoException e) {
        if (e.errno() == Errno.ENOENT) {
          throw new IOException("image " + id + " not found: the daemon behind the fanotify relay of " + cacheDir
              + " does not know it in domain " + dom + " (is 'lazypull daemon' running with a backend that has it?)");
        }
        throw new MetaBlobException(id, "cannot read the meta blob of image " + id + " through the fanotify relay of "
            + cacheDir + " (" + e.getMessage() + "): " + MetaBlobException.DAEMON_HINT, e);
      }
      List<String> tags = deviceTags(id, meta.path(), "the fanotify relay of " + cacheDir);
      List<Path> devices = new ArrayList<>();
      for (String tag : tags) {
        devices.add(relay.open(dom, tag, false).path());
      }
      Mounts.mountErofs(meta.path(), target, devices);
      relay.mounted(target);
    }
  }

  /**
   * The device table of the meta blob at {@code meta} (a front end's file: reading it makes
   * the daemon fetch and verify it), with errors that say which blob and what is wrong.
   */
  private static List<String> deviceTags(String id, Path meta, String via) throws IOException {
    List<String> tags = new ArrayList<>();
    try (ImageSource src = ImageSource.of(meta); ErofsImage image = ErofsImage.open(src, List.of())) {
      for (ErofsImage.Device d : image.devices()) {
        tags.add(d.tag());
      }
    } catch (CorruptImageException e) {
      throw new MetaBlobException(id, "the meta blob of image " + id + " (" + meta + ") is not a valid EROFS image: "
          + e.getMessage(), e);
    } catch (NoSuchFileException e) {
      throw e;
    } catch (IOException e) {
      throw new MetaBlobException(id, "cannot read the meta blob of image " + id + " through " + via + " ("
          + Errors.describe(e) + "): " + MetaBlobException.DAEMON_HINT, e);
    }
    for (String tag : tags) {
      if (!DIGEST.matcher(tag).matches()) {
        throw new IOException("image " + id + ": device tag '" + tag + "' is not a blob digest;"
            + " build images with 'lazypull mkfs --layout chunked|tar-index'");
      }
    }
    return tags;
  }

  private void mountOverShim(String id, String dom) throws IOException {
    Path meta = shim.resolve(dom).resolve(id);
    List<String> tags;
    try {
      tags = deviceTags(id, meta, "the shim at " + shim);
    } catch (NoSuchFileException e) {
      throw new IOException("image " + id + " not found: the daemon behind the shim at " + shim
          + " does not know it in domain " + dom + " (is 'lazypull daemon' running with a backend that has it?)");
    }
    List<Path> devices = new ArrayList<>();
    for (String tag : tags) {
      devices.add(shim.resolve(dom).resolve(tag));
    }
    Mounts.mountErofs(meta, target, devices);
  }
}
