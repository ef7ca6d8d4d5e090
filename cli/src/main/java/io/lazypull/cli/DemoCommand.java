package io.lazypull.cli;

import io.lazypull.erofs.Layout;
import io.lazypull.erofs.Mkfs;
import io.lazypull.erofs.MkfsResult;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
    description = {
      "Show lazy pulling on this machine, end to end, with real parts:",
      "  1. pack this machine's JDK as a container layer (a tar) and convert it to an",
      "     EROFS image (a meta blob and a data blob) with 'lazypull mkfs';",
      "  2. put both blobs in a local backend (a directory);",
      "  3. start a holder, the fuse-shim and the daemon, and mount the image with the",
      "     kernel's EROFS;",
      "  4. run 'java -version' from the mounted image and print how much of it was",
      "     fetched on demand;",
      "  5. unmount and stop everything.",
      "Needs root, /dev/fuse and a kernel with file-backed EROFS mounts (6.12+).",
    })
final class DemoCommand implements Callable<Integer> {
  @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "/var/tmp/lazypull-demo",
      description = "Scratch directory, kept afterwards for its logs (default: ${DEFAULT-VALUE})."
          + " Wiped and made anew, mode 0700; refused if it is not a directory of ours that only we"
          + " can write, or if another user could replace it or a directory above it.")
  Path workDir;

  @Override
  public Integer call() throws Exception {
    PrintStream out = System.out;
    Path jdk = Path.of(System.getProperty("java.home")).toRealPath();
    // A fixed path in world-writable /var/tmp: made by us, private, or refused (WorkDirs).
    Path work = WorkDirs.fresh(workDir);
    Path backend = Files.createDirectories(work.resolve("backend"));

    out.println("1. a layer: tar of " + jdk);
    Path tar = work.resolve("layer.tar");
    run(List.of("tar", "-C", jdk.toString(), "-cf", tar.toString(), "."));
    long t0 = System.nanoTime();
    Path meta = work.resolve("meta.img");
    MkfsResult image = Mkfs.builder().layout(Layout.CHUNKED).blobDir(backend).build().build(tar, meta);
    Files.copy(meta, backend.resolve(image.fsid()), StandardCopyOption.REPLACE_EXISTING);
    long dataSize = image.dataBlob().orElseThrow().size();
    out.printf("   lazypull mkfs --layout chunked: %d inodes, meta blob %s, data blob %s (%d ms)%n",
        image.inodes(), mib(Files.size(meta)), mib(dataSize), ms(t0));
    out.println("   fsid " + image.fsid());

    out.println("2. a local backend: file://" + backend);
    try (Stack stack = new Stack(work.resolve("serve"), "file://" + backend).withQuietLogFiles().childrenDieWithUs()) {
      out.println("3. holder, shim and daemon (logs in " + stack.dir.resolve("logs") + ")");
      stack.startHolder().startShim().startDaemon();
      Path mnt = Files.createDirectories(work.resolve("mnt"));
      t0 = System.nanoTime();
      stack.mount(image.fsid(), null, mnt);
      out.printf("   mounted on %s (%d ms)%n", mnt, ms(t0));

      out.println("4. run the JDK from the image: " + mnt.resolve("bin/java") + " -version");
      t0 = System.nanoTime();
      Process java = new ProcessBuilder(mnt.resolve("bin/java").toString(), "-version").redirectErrorStream(true).start();
      String version = new String(java.getInputStream().readAllBytes()).strip();
      if (!java.waitFor(120, TimeUnit.SECONDS) || java.exitValue() != 0) {
        throw new IllegalStateException("java from the image failed: " + version);
      }
      long runMs = ms(t0);
      version.lines().forEach(l -> out.println("   | " + l));
      long fetched = stack.cachedBytes();
      out.printf("   took %d ms, cold; fetched on demand: %s of %s (%.1f%%)%n", runMs, mib(fetched),
          mib(dataSize + Files.size(meta)), 100.0 * fetched / (dataSize + Files.size(meta)));
      t0 = System.nanoTime();
      java = new ProcessBuilder(mnt.resolve("bin/java").toString(), "-version").redirectErrorStream(true).start();
      java.getInputStream().readAllBytes();
      java.waitFor(60, TimeUnit.SECONDS);
      out.printf("   again, warm: %d ms; fetched in all: %s%n", ms(t0), mib(stack.cachedBytes()));
      out.println("5. unmount and stop");
    }
    out.println("done: the image was served on demand; only what 'java -version' read was fetched.");
    return 0;
  }

  private static void run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String output = new String(p.getInputStream().readAllBytes());
    if (p.waitFor() != 0) {
      throw new IllegalStateException(String.join(" ", cmd) + " failed: " + output.strip());
    }
  }

  private static long ms(long t0) {
    return (System.nanoTime() - t0) / 1_000_000;
  }

  private static String mib(long bytes) {
    return String.format("%.1f MiB", bytes / 1048576.0);
  }
}
