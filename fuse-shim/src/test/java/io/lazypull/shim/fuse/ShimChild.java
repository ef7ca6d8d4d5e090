package io.lazypull.shim.fuse;

import java.nio.file.Path;

/** A shim in a child JVM, for tests that kill it with SIGKILL: args mountpoint, cache dir, socket. */
public final class ShimChild {
  private ShimChild() {}

  public static void main(String[] args) throws Exception {
    FuseShim f = FuseShim.start(Path.of(args[0]), Path.of(args[1]), Path.of(args[2]), FuseShim.Options.DEFAULT);
    System.out.println("MOUNTED");
    System.out.flush();
    f.awaitTermination();
  }
}
