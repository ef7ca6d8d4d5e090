package io.lazypull.cli;

import io.lazypull.sys.ErrnoException;
import io.lazypull.sys.Errno;
import io.lazypull.sys.Mounts;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "umount", mixinStandardHelpOptions = true,
    description = "Unmount an image mounted by 'lazypull mount' (the daemon then gets CLOSE).")
final class UmountCommand implements Callable<Integer> {
  @Option(names = {"-l", "--lazy"}, description = "Detach now, clean up when no longer busy (MNT_DETACH).")
  boolean lazy;

  @Parameters(index = "0", paramLabel = "TARGET")
  Path target;

  @Override
  public Integer call() throws Exception {
    if (!Mounts.isMountPoint(target)) {
      throw new IllegalArgumentException(target + " is not mounted");
    }
    try {
      Mounts.umount(target, lazy ? Mounts.MNT_DETACH : 0);
    } catch (ErrnoException e) {
      if (e.errno() == Errno.EBUSY) {
        throw new IllegalStateException(target + " is busy (files open or a process inside); use --lazy to detach it");
      }
      throw e;
    }
    return 0;
  }
}
