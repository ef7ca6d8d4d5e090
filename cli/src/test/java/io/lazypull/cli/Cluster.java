package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * A {@link Stack} for end-to-end tests: log files per process, and a helper that builds an
 * image straight into a file:// backend directory.
 */
final class Cluster implements AutoCloseable {
  final Stack stack;
  private int mounts;

  Cluster(Path dir, String backend) throws IOException {
    this.stack = new Stack(dir, backend).withLogFiles();
  }

  /** Builds an image of {@code source} into {@code blobs}: the meta blob named by the fsid, the data blob by its digest. */
  static MkfsResult buildImage(Path source, Path blobs, Layout layout) throws IOException {
    Files.createDirectories(blobs);
    Path meta = blobs.resolve("meta.tmp");
    MkfsResult r = Mkfs.builder().layout(layout).blobDir(blobs).build().build(source, meta);
    Files.move(meta, blobs.resolve(r.fsid()), StandardCopyOption.REPLACE_EXISTING);
    return r;
  }

  Cluster startHolder() throws Exception {
    stack.startHolder();
    return this;
  }

  Cluster startShim() throws Exception {
    stack.startShim();
    return this;
  }

  Cluster startDaemon() throws Exception {
    stack.startDaemon();
    return this;
  }

  /** Mounts image {@code fsid} through the shim on a new directory and returns it. */
  Path mount(String fsid) throws Exception {
    Path target = Files.createDirectories(stack.dir.resolve("mnt-" + mounts++));
    stack.mount(fsid, null, target);
    return target;
  }

  /**
   * The seed's kill loop: while any reader runs, waits until the current daemon serves, lets
   * it serve for a random 0.2 s to {@code maxServeMillis}, SIGKILLs it and starts the same
   * command again at once (as a supervisor would), until the readers end or {@code maxKills}.
   * The random point hits OPENs, fetches, and writes not yet completed. Returns the kills.
   */
  int killDaemonWhileReading(java.util.List<Process> readers, java.util.Random rnd, int maxServeMillis,
      int maxKills) throws Exception {
    int kills = 0;
    while (Readers.anyAlive(readers) && kills < maxKills) {
      Stack.await("daemon " + stack.daemonStarts, stack::daemonReady, stack.daemon);
      Thread.sleep(200 + rnd.nextInt(maxServeMillis - 200));
      if (!Readers.anyAlive(readers)) {
        break;
      }
      stack.daemon.kill();
      kills++;
      stack.launchDaemon();
    }
    return kills;
  }

  String daemonLog() throws IOException {
    Path f = stack.dir.resolve("logs/daemon.log");
    return Files.exists(f) ? Files.readString(f) : "";
  }

  @Override
  public void close() {
    stack.close();
  }
}
