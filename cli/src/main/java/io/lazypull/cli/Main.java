package io.lazypull.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import java.io.PrintWriter;
import java.util.List;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code lazypull} command. Each subcommand is one class in this package; adding one
 * touches one line of {@link #COMMANDS}.
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
    })
public final class Main implements Runnable {
  /** The subcommands, in the order help lists them. */
  static final List<Class<?>> COMMANDS = List.of(
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
      CommandLine.HelpCommand.class);

  @Option(names = {"-v", "--verbose"}, description = "Log at debug level (repeat for trace).",
      scope = CommandLine.ScopeType.INHERIT)
  void setVerbose(boolean[] verbose) {
    Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.setLevel(verbose.length > 1 ? Level.TRACE : Level.DEBUG);
  }

  @Option(names = "--config", paramLabel = "FILE", scope = CommandLine.ScopeType.INHERIT,
      description = "Settings from this YAML file (up, daemon, shim, status, gc; see docs/operations.md);"
          + " options given here win.")
  void setConfig(java.nio.file.Path file) {
    // read before parsing (see execute): its values are the options' defaults
  }

  @Option(names = "--log-format", paramLabel = "text|json", scope = CommandLine.ScopeType.INHERIT,
      description = "Log lines as text (default) or as one JSON object per line.")
  void setLogFormat(String format) {
    try {
      logFormat(format);
    } catch (CommandLine.TypeConversionException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
  }

  /** The log format of this process, passed on to the processes it starts. */
  static volatile String logFormat = "text";

  /** Set by a parent for its children: their log format. */
  static final String LOG_FORMAT = "LAZYPULL_LOG_FORMAT";

  static void logFormat(String format) {
    if (!format.equals("text") && !format.equals("json")) {
      throw new CommandLine.TypeConversionException("--log-format must be text or json, not '" + format + "'");
    }
    if (format.equals(logFormat)) {
      return;
    }
    logFormat = format;
    Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    var appender = (ch.qos.logback.core.ConsoleAppender<ch.qos.logback.classic.spi.ILoggingEvent>)
        root.getAppender(LogConfig.APPENDER);
    if (appender == null) {
      return;
    }
    appender.stop();
    ch.qos.logback.core.encoder.Encoder<ch.qos.logback.classic.spi.ILoggingEvent> encoder;
    if (format.equals("json")) {
      var json = new ch.qos.logback.classic.encoder.JsonEncoder();
      json.setWithSequenceNumber(false);
      json.setWithNanoseconds(false);
      json.setWithContext(false);
      json.setWithArguments(false);
      json.setWithMarkers(false);
      json.setWithMDC(false);
      json.setWithKVPList(false);
      json.setWithMessage(false);
      json.setWithFormattedMessage(true); // "message": the line as text shows it
      encoder = json;
      encoder.setContext(root.getLoggerContext());
      encoder.start();
    } else {
      encoder = LogConfig.textEncoder(root.getLoggerContext());
    }
    appender.setEncoder(encoder);
    appender.start();
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
    String format = System.getenv(LOG_FORMAT);
    if (format != null) {
      logFormat(format);
    }
    System.exit(execute(args));
  }

  /** The config file the command line names, once read (null: none). */
  static volatile ConfigFile config;

  /**
   * Runs the command line and returns the exit code: 0 ok, 1 failure, 2 usage error (a bad
   * config file too: one line naming the key and its line).
   */
  public static int execute(String... args) {
    CommandLine cl = newCommandLine(args);
    java.nio.file.Path file = configArg(args);
    if (file != null) {
      try {
        config = ConfigFile.load(file);
      } catch (java.io.IOException e) {
        cl.getErr().println("lazypull: " + e.getMessage());
        cl.getErr().flush();
        return 2;
      }
      String level = config.get("log.level");
      if (level != null) {
        ((Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME)).setLevel(Level.toLevel(level));
      }
      String format = config.get("log.format");
      if (format != null) {
        logFormat(format);
      }
      cl.setDefaultValueProvider(config.defaults(null));
    }
    return cl.execute(args);
  }

  /** The value of --config (or --config=FILE) in {@code args}, or null. */
  static java.nio.file.Path configArg(String[] args) {
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--")) {
        break;
      }
      if (args[i].equals("--config") && i + 1 < args.length) {
        return java.nio.file.Path.of(args[i + 1]);
      }
      if (args[i].startsWith("--config=")) {
        return java.nio.file.Path.of(args[i].substring("--config=".length()));
      }
    }
    return null;
  }

  /** The whole command tree. */
  static CommandLine newCommandLine() {
    return newCommandLine(null);
  }

  /**
   * The command tree for {@code args}: only the subcommand they name when they name one (and
   * ask no top-level help), else all of them. Picocli builds a command's model when it is
   * added, making its objects and loading what their fields need (Jackson, gRPC, the AWS SDK's
   * types): for all twenty commands that was ~0.3 s of every JVM start, and a daemon's start is
   * most of a cold failover's stall (docs/benchmarks.md).
   */
  static CommandLine newCommandLine(String[] args) {
    CommandLine cl = new CommandLine(new Main());
    Class<?> only = args == null ? null : named(args);
    for (Class<?> c : COMMANDS) {
      if (only == null || c == only) {
        cl.addSubcommand(c);
      }
    }
    cl.setExecutionExceptionHandler(Main::handleFailure);
    cl.setParameterExceptionHandler(Main::handleUsageError);
    cl.setUsageHelpWidth(100); // descriptions are written to 94 columns
    return cl;
  }

  /**
   * The subcommand class the first argument that is not a top-level option names, or null
   * (none, an unknown name, or top-level help or version asked for: then all are needed).
   */
  static Class<?> named(String[] args) {
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--config") || a.equals("--log-format")) {
        i++; // its value
      } else if (a.startsWith("--config=") || a.startsWith("--log-format=") || a.equals("--verbose")
          || a.matches("-v+")) {
        continue;
      } else if (a.startsWith("-")) {
        return null; // -h, --help, -V, --version, or what picocli will reject with all commands listed
      } else {
        for (Class<?> c : COMMANDS) {
          Command command = c.getAnnotation(Command.class);
          if (command.name().equals(a) || List.of(command.aliases()).contains(a)) {
            return c == CommandLine.HelpCommand.class ? null : c;
          }
        }
        return null;
      }
    }
    return null;
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
