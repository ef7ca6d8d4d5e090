package io.lazypull.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Class-data sharing (AppCDS) for lazypull's JVMs. A JVM start is most of a cold failover's
 * stall (the supervisor starts a new daemon while readers wait); an archive of the classes a
 * daemon loads at start-up, mapped instead of loaded, shortens it (docs/benchmarks.md).
 *
 * <p>The archive is a JDK 17 dynamic archive on top of the JDK's default one, valid only for
 * the exact class path it was made with: the launcher makes it next to the jar after each
 * build, and passes it down as {@value #PROPERTY} so that the processes 'up', 'demo' and the
 * benchmarks start use it too. A stale or foreign archive is ignored silently ({@code
 * -Xlog:cds*=off}: the JVM would otherwise print its reasons on stdout, where 'fetch' writes
 * data).
 */
final class Cds {
  /** The system property naming the archive for this JVM's class path (set by the launcher). */
  static final String PROPERTY = "lazypull.cds";

  /**
   * The system property naming the archive for daemons of S3 backends (set by the launcher
   * where daemons start): the small archive's classes and the S3 client's.
   */
  static final String S3_PROPERTY = "lazypull.cds.s3";

  private Cds() {}

  /** The archive the launcher made for this class path, or null. */
  static Path fromLauncher() {
    return existing(System.getProperty(PROPERTY));
  }

  /**
   * The archive a daemon of these backend URIs starts with: the launcher's S3 one if any
   * backend is S3 and it exists (a daemon of S3 started in 0.53-0.64 s with it, 0.95-1.05 s
   * without: the client's ~1,500 classes are mapped, not loaded and verified), else the small
   * one. A JVM pays for the whole archive it maps: the S3 one cost a file:// daemon 13 MiB and
   * gained it nothing, a registry's daemon 8-10 MiB for 0.08 s.
   */
  static Path forDaemon(java.util.Collection<String> backendUris) {
    Path s3 = existing(System.getProperty(S3_PROPERTY));
    boolean anyS3 = backendUris.stream().anyMatch(u -> u != null && u.startsWith("s3:"));
    return s3 != null && anyS3 ? s3 : fromLauncher();
  }

  private static Path existing(String p) {
    return p != null && Files.isRegularFile(Path.of(p)) ? Path.of(p) : null;
  }

  /** The JVM options that map {@code archive} (none if null), and pass it on to children. */
  static List<String> jvmOptions(Path archive) {
    if (archive == null) {
      return List.of();
    }
    List<String> options = new ArrayList<>(
        List.of("-XX:SharedArchiveFile=" + archive, "-Xlog:cds*=off", "-D" + PROPERTY + "=" + archive));
    String s3 = System.getProperty(S3_PROPERTY);
    if (s3 != null) {
      options.add("-D" + S3_PROPERTY + "=" + s3); // for the daemons a child starts in turn
    }
    return options;
  }

  /**
   * Makes an archive for this JVM's class path: runs the daemon's start-up (against a device
   * that is not there, so it stops right after loading its commands, logging, JNA and the
   * backends) in a JVM that writes the classes it loaded at exit. The daemon serves a file://
   * backend and {@code daemonArgs} (e.g. {@code --domain s3=URI}: the S3 client's classes too).
   */
  static Path dump(Path archive, List<String> daemonArgs) throws IOException, InterruptedException {
    Path dir = Files.createDirectories(archive.toAbsolutePath().getParent());
    Path tmp = Files.createTempFile(dir, "cds", ".jsa.tmp");
    Files.delete(tmp); // the JVM creates it
    Path scratch = Files.createTempDirectory(dir, "cds-train");
    try {
      List<String> cmd = new ArrayList<>();
      cmd.add(ProcessHandle.current().info().command().orElse("java"));
      cmd.addAll(List.of("-XX:ArchiveClassesAtExit=" + tmp, "-Xlog:cds*=off", "-Xmx256m", "-XX:+UseSerialGC"));
      cmd.addAll(Child.nativeLibraryOptions());
      cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(),
          "daemon", "--device", "shim:" + scratch.resolve("no-shim.sock"), "--backend", scratch.toUri().toString(),
          "--state-dir", scratch.resolve("state").toString()));
      cmd.addAll(daemonArgs);
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
          .start();
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("the class-data training run did not end within 120 s");
      }
      if (!Files.isRegularFile(tmp)) {
        throw new IOException("the class-data training run wrote no archive (exit " + p.exitValue() + ")");
      }
      return Files.move(tmp, archive, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(tmp);
      BenchReadCommand.run("rm", "-rf", scratch.toString());
    }
  }
}
