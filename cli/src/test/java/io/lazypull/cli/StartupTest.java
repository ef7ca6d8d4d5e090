package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.PatternLayout;
import ch.qos.logback.classic.spi.LoggingEvent;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

/**
 * What a JVM start does before a command runs (a daemon's start is most of a cold failover's
 * stall): only the command named is built, and logging is configured in code, printing what
 * the pattern it replaced printed.
 */
class StartupTest {
  @Test
  void theCommandNamed_isTheOnlyOneBuilt_pastTopLevelOptions() {
    for (String[] args : List.of(
        new String[] {"daemon", "--device", "kernel"},
        new String[] {"-v", "daemon"},
        new String[] {"-vv", "--config", "daemon", "daemon"}, // --config's value is not the command
        new String[] {"--log-format=json", "--config=x.yaml", "daemon", "--help"})) {
      assertThat(Main.named(args)).as(String.join(" ", args)).isEqualTo(DaemonCommand.class);
      assertThat(Main.newCommandLine(args).getSubcommands()).as(String.join(" ", args)).containsOnlyKeys("daemon");
    }
    assertThat(Main.named(new String[] {"bench", "read"})).isEqualTo(BenchCommand.class);
    assertThat(Main.newCommandLine(new String[] {"bench", "read"}).getSubcommands().get("bench").getSubcommands())
        .containsKey("read");
  }

  @Test
  void helpVersionOrAnUnknownName_buildEveryCommand() {
    int all = Main.newCommandLine().getSubcommands().size();
    assertThat(all).isEqualTo(Main.COMMANDS.size());
    for (String[] args : List.of(new String[] {}, new String[] {"--help"}, new String[] {"-V"},
        new String[] {"help", "daemon"}, new String[] {"bogus"}, new String[] {"--config"})) {
      assertThat(Main.named(args)).as(String.join(" ", args)).isNull();
      assertThat(Main.newCommandLine(args).getSubcommands()).as(String.join(" ", args)).hasSize(all);
    }
  }

  @Test
  void inheritedOptions_reachACommandAddedAlone() {
    CommandLine cl = Main.newCommandLine(new String[] {"daemon"});
    CommandLine daemon = cl.getSubcommands().get("daemon");
    assertThat(daemon.getCommandSpec().findOption("--verbose")).isNotNull();
    assertThat(daemon.getCommandSpec().findOption("--config")).isNotNull();
    assertThat(daemon.getCommandSpec().findOption("--log-format")).isNotNull();
  }

  @Test
  void logging_isConfiguredInCode() {
    LoggerContext context = (LoggerContext) LoggerFactory.getILoggerFactory();
    ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    assertThat(root.getAppender(LogConfig.APPENDER)).isNotNull();
    assertThat(context.getLogger("org.apache.hc").getLevel()).isEqualTo(Level.WARN); // headers, tokens
  }

  @Test
  void theTextLayout_printsWhatThePatternItReplacedPrinted() {
    LoggerContext context = new LoggerContext();
    PatternLayout pattern = new PatternLayout();
    pattern.setContext(context);
    pattern.setPattern("%d{HH:mm:ss.SSS} %-5level [%thread] %logger{0}: %msg%n");
    pattern.start();
    LogConfig.TextLayout text = new LogConfig.TextLayout();
    text.setContext(context);
    text.start();
    ch.qos.logback.classic.Logger logger = context.getLogger("io.lazypull.daemon.Fetcher");
    Exception failure = new java.io.IOException("backend said no", new IllegalStateException("cause"));
    for (LoggingEvent e : List.of(
        new LoggingEvent("x", logger, Level.INFO, "fetched {} bytes", null, new Object[] {4096}),
        new LoggingEvent("x", logger, Level.WARN, "fetch failed", failure, null),
        new LoggingEvent("x", context.getLogger("Main$Inner"), Level.ERROR, "done", null, null),
        new LoggingEvent("x", context.getLogger("a.b.C"), Level.DEBUG, "", null, null))) {
      e.setThreadName("fetch-3");
      e.setTimeStamp(86_399_007L + 37 * 3_600_000L); // a millisecond field with zeros to keep
      assertThat(text.doLayout(e)).isEqualTo(pattern.doLayout(e));
    }
  }
}
