package io.lazypull.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A lazypull subcommand run as a child process of this JVM (same java, same class path), its
 * output copied to ours line by line with a prefix, so that 'up' shows one readable log.
 */
final class Child implements AutoCloseable {
  private final String name;
  private final List<String> command;
  private final java.util.Map<String, String> env = new java.util.HashMap<>();
  private java.nio.file.Path log;
  private boolean quiet;
  private boolean detached;
  private Process process;
  /** The process: ours (started) or adopted (started by an earlier process, see {@link #adopt}). */
  private ProcessHandle handle;
  private Thread pump;

  /** The system property naming the daemon's compiler directives file (set by the launcher). */
  static final String COMPILER_DIRECTIVES = "lazypull.compilerDirectives";

  private static final java.nio.file.Path SETSID = java.nio.file.Path.of("/usr/bin/setsid");

  private Child(String name, List<String> command) {
    this.name = name;
    this.command = command;
  }

  /** {@code lazypull <args>} in a new JVM with heap {@code heap} (e.g. "256m"). */
  static Child lazypull(String name, String heap, List<String> args) {
    return lazypull(name, heap, args, Cds.fromLauncher());
  }

  /** The same, mapping the class-data archive {@code cds} (none if null; see {@link Cds}). */
  static Child lazypull(String name, String heap, List<String> args, java.nio.file.Path cds) {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    cmd.add("-Xmx" + heap);
    cmd.addAll(memoryOptions(name));
    cmd.addAll(Cds.jvmOptions(cds));
    String directives = System.getProperty(COMPILER_DIRECTIVES);
    if (directives != null) {
      cmd.add("-D" + COMPILER_DIRECTIVES + "=" + directives); // for the children it starts in turn
    }
    cmd.addAll(nativeLibraryOptions());
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add(Main.class.getName());
    cmd.addAll(args);
    Child c = new Child(name, cmd);
    if (!Main.logFormat.equals("text")) {
      c.env(java.util.Map.of(Main.LOG_FORMAT, Main.logFormat));
    }
    return c;
  }

  /**
   * C1 compiles a front end's methods after a tenth of the usual calls and loops (docs/benchmarks.md,
   * "the front ends' compiler"); the launcher gives 'up', whose JVM runs the FUSE shim, the same.
   */
  static final String FRONT_END_COMPILE_SCALING = "-XX:CompileThresholdScaling=0.1";

  /**
   * JVM options that keep a child's memory small (measured in docs/benchmarks.md): the serial
   * collector with a heap that starts at 8 MiB and grows only as needed (the default initial
   * heap, 1/64 of the machine's memory, was touched whole before the first collection: the
   * daemon peaked at 190 MiB reading 1 MiB), no perf-data file, and for the processes that do
   * little computing (holder, shim, relay) only the C1 compiler: fewer compiler threads and
   * less code cache. The daemon hashes every byte it fetches and only C2 code uses the CPU's
   * SHA-256 instructions, so it keeps C2 for the digest code alone (the launcher's compiler
   * directives, {@link #compilerDirectives}): C2 compiling the rest cost a new daemon more CPU
   * than it saved, on the cold read that pays for it.
   *
   * <p>The front ends (shim, relay) compile sooner ({@link #FRONT_END_COMPILE_SCALING}): a new
   * stack's first reads are its image's cold start, thousands of FUSE requests or fanotify
   * events that a front end otherwise answered in the interpreter until each method had run 200
   * times. The daemon did not gain from it (more CPU, no shorter reads).
   */
  static List<String> memoryOptions(String name) {
    List<String> options = new ArrayList<>(List.of("-XX:+UseSerialGC", "-Xms8m", "-XX:-UsePerfData"));
    if (!name.equals("daemon")) {
      options.add("-XX:TieredStopAtLevel=1");
      if (name.equals("shim") || name.equals("relay")) {
        options.add(FRONT_END_COMPILE_SCALING);
      }
    } else {
      options.addAll(compilerDirectives());
    }
    return options;
  }

  /**
   * The options that give a JVM the compiler directives file the launcher names in {@value
   * #COMPILER_DIRECTIVES}: none if it names none, or no readable file (the JVM would not start).
   */
  static List<String> compilerDirectives() {
    String p = System.getProperty(COMPILER_DIRECTIVES);
    if (p == null || !java.nio.file.Files.isReadable(java.nio.file.Path.of(p))) {
      return List.of();
    }
    // The JVM announces the directives it added on stdout: stderr is where the daemon logs.
    return List.of("-XX:+UnlockDiagnosticVMOptions", "-XX:CompilerDirectivesFile=" + p,
        "-XX:+DisplayVMOutputToStderr");
  }

  /**
   * Where this JVM unpacks native libraries (JNA, jffi for FUSE, zstd-jni), as options for a
   * child JVM: the launcher chose a directory only this user can write, and a child that
   * fell back to a default would not use it.
   */
  static List<String> nativeLibraryOptions() {
    List<String> options = new ArrayList<>();
    for (String property : List.of("jna.tmpdir", "jffi.extract.dir", "ZstdTempFolder")) {
      String dir = System.getProperty(property);
      if (dir != null) {
        options.add("-D" + property + "=" + dir);
      }
    }
    return options;
  }

  /** Adds environment variables for the child (e.g. backend credentials). */
  Child env(java.util.Map<String, String> vars) {
    env.putAll(vars);
    return this;
  }

  /** Also appends the child's output to {@code file}. */
  Child logTo(java.nio.file.Path file) {
    this.log = file;
    return this;
  }

  /** Appends the child's output only to {@code file}, not to our stderr. */
  Child logOnlyTo(java.nio.file.Path file) {
    this.log = file;
    this.quiet = true;
    return this;
  }

  /**
   * Appends the child's output straight to {@code file}, with no pipe through us: the child
   * can outlive this process (the snapshotter's stack survives a snapshotter restart).
   */
  Child detachedTo(java.nio.file.Path file) {
    this.log = file;
    this.detached = true;
    return this;
  }

  /**
   * A process an earlier run started (its pid read back from a pid file), to be watched and
   * stopped like one of ours; its exit value is unknown (-1).
   */
  static Child adopt(String name, ProcessHandle h) {
    Child c = new Child(name, h.info().arguments().map(List::of).orElse(List.of()));
    c.handle = h;
    return c;
  }

  Child start() throws IOException {
    List<String> cmd = command;
    if (detached && java.nio.file.Files.isExecutable(SETSID)) {
      // its own session: a Ctrl-C or a hang-up of our terminal does not reach it. setsid(1)
      // execs in place (we are not a group leader), so the pid stays the child's.
      cmd = new ArrayList<>(List.of(SETSID.toString()));
      cmd.addAll(command);
    }
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().putAll(env);
    if (detached) {
      pb.redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
      process = pb.start();
      handle = process.toHandle();
      return this;
    }
    process = pb.start();
    handle = process.toHandle();
    PrintStream out = System.err;
    if (log != null) {
      PrintStream file = new PrintStream(new java.io.FileOutputStream(log.toFile(), true), true, StandardCharsets.UTF_8);
      boolean echo = !quiet;
      out = new PrintStream(new java.io.OutputStream() {
        @Override
        public void write(int b) {
          if (echo) {
            System.err.write(b);
          }
          file.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
          if (echo) {
            System.err.write(b, off, len);
          }
          file.write(b, off, len);
        }
      }, true, StandardCharsets.UTF_8);
    }
    PrintStream target = out;
    pump = new Thread(() -> copy(process, name, target), name + "-log");
    pump.setDaemon(true);
    pump.start();
    return this;
  }

  private static void copy(Process p, String name, PrintStream out) {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        if (line.startsWith("{\"") && line.endsWith("}")) {
          out.println("{\"process\":\"" + name + "\"," + line.substring(1)); // a JSON log line stays one
        } else {
          out.println("[" + name + "] " + line);
        }
      }
    } catch (IOException e) {
      // the child is gone
    }
  }

  /** The full command line (java, options, class path, main class, arguments). */
  List<String> command() {
    return List.copyOf(command);
  }

  String name() {
    return name;
  }

  long pid() {
    return handle.pid();
  }

  boolean isAlive() {
    if (process != null) {
      return process.isAlive(); // ours: alive until reaped, so exitValue() is there once this is false
    }
    return handle != null && handle.isAlive();
  }

  /** The exit value; -1 for an adopted process (not our child: the kernel tells us nothing). */
  int exitValue() {
    return process == null ? -1 : process.exitValue();
  }

  Process process() {
    return process;
  }

  /** SIGKILL, and wait until it is gone (its fds are closed then). */
  void kill() {
    if (!isAlive()) {
      return;
    }
    signal(9);
    try {
      awaitExit(30);
      joinPump();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private boolean awaitExit(int seconds) throws InterruptedException {
    try {
      handle.onExit().get(seconds, TimeUnit.SECONDS);
      return true;
    } catch (java.util.concurrent.TimeoutException e) {
      return false;
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(e);
    }
  }

  private void joinPump() throws InterruptedException {
    if (pump != null) {
      pump.join(5000);
    }
  }

  /**
   * Sends a signal with kill(2). Not Process.destroy(): that also closes our end of the
   * child's output pipe, and the lines it logs while shutting down would be lost.
   */
  private void signal(int sig) {
    try {
      io.lazypull.sys.Posix.kill((int) handle.pid(), sig);
    } catch (io.lazypull.sys.ErrnoException e) {
      handle.destroyForcibly();
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within {@code seconds}. */
  void stop(int seconds) {
    if (!isAlive()) {
      return;
    }
    signal(15);
    try {
      if (!awaitExit(seconds)) {
        signal(9);
        awaitExit(5);
      }
      joinPump(); // its last lines are in the log when we return
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * SIGTERM, and wait up to {@code seconds}; never SIGKILL: for a process that refuses to stop
   * for a reason (the holder, while a mount still uses the fanotify group it keeps) and exits by
   * itself later. Returns true if it exited.
   */
  boolean stopGently(int seconds) {
    if (!isAlive()) {
      return true;
    }
    signal(15);
    try {
      if (awaitExit(seconds)) {
        joinPump();
        return true;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return false;
  }

  @Override
  public void close() {
    stop(10);
  }
}
