package io.lazypull.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import java.io.PrintWriter;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code lazypull} command. Each subcommand is one class in this package; adding one
 * touches one line of the table below.
 */
@Command(
    name = "lazypull",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = {
      "On-demand EROFS images: build them, serve them from S3, OCI registries or",
      "local tar layers through the cachefiles on-demand protocol (or its FUSE",
      "emulation), and keep serving across daemon crashes.",
      ""
    },
    subcommands = {
      // serving
      UpCommand.class,
      DemoCommand.class,
      ShimCommand.class,
      DaemonCommand.class,
      HolderCommand.class,
      UpgradeCommand.class,
      MountCommand.class,
      UmountCommand.class,
      SnapshotterCommand.class,
      PullCommand.class,
      StatusCommand.class,
      GcCommand.class,
      // images
      MkfsCommand.class,
      InspectCommand.class,
      ExtractCommand.class,
      ConvertCommand.class,
      // backends
      FetchCommand.class,
      StatCommand.class,
      PushCommand.class,
      // benchmarks
      BenchCommand.class,
      CommandLine.HelpCommand.class,
    })
public final class Main implements Runnable {
  @Option(names = {"-v", "--verbose"}, description = "Log at debug level (repeat for trace).",
      scope = CommandLine.ScopeType.INHERIT)
  void setVerbose(boolean[] verbose) {
    Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.setLevel(verbose.length > 1 ? Level.TRACE : Level.DEBUG);
  }

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
  }

  /** Set by 'up' and 'demo' for their children: they stop when it dies, even by SIGKILL. */
  static final String DIE_WITH_PARENT = "LAZYPULL_DIE_WITH_PARENT";

  /** Set by 'up' for its children: the file each holds a shared lock on ({@link StackLock}). */
  static final String STACK_LOCK = "LAZYPULL_STACK_LOCK";

  public static void main(String[] args) {
    String stackLock = System.getenv(STACK_LOCK);
    if (stackLock != null) {
      StackLock.holdForLife(java.nio.file.Path.of(stackLock));
    }
    String parent = System.getenv(DIE_WITH_PARENT);
    if (parent != null) {
      try {
        if (!io.lazypull.sys.Posix.dieWithParent(Integer.parseInt(parent), 15)) {
          System.err.println("lazypull: the process that started this one (pid " + parent + ") is gone; exiting");
          System.exit(1);
        }
      } catch (java.io.IOException | NumberFormatException e) {
        System.err.println("lazypull: ignoring " + DIE_WITH_PARENT + "=" + parent + ": " + e.getMessage());
      }
    }
    System.exit(execute(args));
  }

  /** Runs the command line and returns the exit code: 0 ok, 1 failure, 2 usage error. */
  public static int execute(String... args) {
    return newCommandLine().execute(args);
  }

  static CommandLine newCommandLine() {
    CommandLine cl = new CommandLine(new Main());
    cl.setExecutionExceptionHandler(Main::handleFailure);
    cl.setParameterExceptionHandler(Main::handleUsageError);
    cl.setUsageHelpWidth(100); // descriptions are written to 94 columns
    return cl;
  }

  /** A failure is one clear line on stderr (the stack trace only with -v), exit code 1. */
  private static int handleFailure(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
    PrintWriter err = cl.getErr();
    String name = cl.getCommandSpec().qualifiedName();
    err.println(name + ": error: " + Errors.describe(e));
    if (LoggerFactory.getLogger(Main.class).isDebugEnabled()) {
      e.printStackTrace(err);
    }
    err.flush();
    return 1;
  }

  private static int handleUsageError(CommandLine.ParameterException e, String[] args) {
    CommandLine cl = e.getCommandLine();
    PrintWriter err = cl.getErr();
    err.println(cl.getCommandSpec().qualifiedName() + ": " + e.getMessage());
    err.println("Try '" + cl.getCommandSpec().qualifiedName() + " --help' for more information.");
    err.flush();
    return 2;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Main.class.getPackage().getImplementationVersion();
      return new String[] {"lazypull " + (v == null ? "dev" : v)};
    }
  }
}
