package io.lazypull.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.Context;
import ch.qos.logback.core.CoreConstants;
import ch.qos.logback.core.LayoutBase;
import ch.qos.logback.core.encoder.Encoder;
import ch.qos.logback.core.encoder.LayoutWrappingEncoder;
import ch.qos.logback.core.spi.ContextAwareBase;
import java.time.Instant;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.Map;

/**
 * Logback's configuration, in code rather than a logback.xml: parsing XML (Joran, the JDK's
 * XML parser and their ~700 classes) took ~0.2 s of every JVM start, and a daemon's start is
 * most of a cold failover's stall (docs/benchmarks.md). Found by logback through
 * META-INF/services. {@code -Dlogback.configurationFile=FILE} still wins: then this steps aside.
 *
 * <p>Logs go to stderr (stdout belongs to command output: 'fetch' writes blob bytes there), one
 * line per event ({@link TextLayout}); the root level is {@code $LAZYPULL_LOG_LEVEL} (default
 * INFO).
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_NORMAL_PRIORITY)
public final class LogConfig extends ContextAwareBase implements Configurator {
  /** The console appender's name ({@link Main#logFormat} swaps its encoder). */
  static final String APPENDER = "STDERR";

  /**
   * Libraries kept quieter than the root: at DEBUG the S3 client's HTTP stack (Apache
   * HttpClient 5, "org.apache.hc") prints request headers, session tokens included; gRPC asks
   * for SO_KEEPALIVE on every channel and netty warns on a unix socket, which has none.
   */
  static final Map<String, Level> QUIET = Map.of(
      "software.amazon.awssdk", Level.WARN,
      "org.apache.http", Level.WARN,
      "org.apache.hc", Level.WARN,
      "jnr", Level.WARN,
      "io.grpc.netty.shaded.io.netty.bootstrap", Level.ERROR,
      "io.grpc.netty.shaded", Level.WARN);

  @Override
  public ExecutionStatus configure(LoggerContext context) {
    if (System.getProperty("logback.configurationFile") != null) {
      return ExecutionStatus.INVOKE_NEXT_IF_ANY;
    }
    Encoder<ILoggingEvent> encoder = textEncoder(context);
    ConsoleAppender<ILoggingEvent> appender = new ConsoleAppender<>();
    appender.setContext(context);
    appender.setName(APPENDER);
    appender.setTarget("System.err");
    appender.setEncoder(encoder);
    appender.start();
    QUIET.forEach((name, level) -> context.getLogger(name).setLevel(level));
    ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    String level = System.getenv("LAZYPULL_LOG_LEVEL");
    root.setLevel(Level.toLevel(level, Level.INFO));
    root.addAppender(appender);
    return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
  }

  /** An encoder of {@link TextLayout} lines, started. */
  static Encoder<ILoggingEvent> textEncoder(Context context) {
    TextLayout layout = new TextLayout();
    layout.setContext(context);
    layout.start();
    LayoutWrappingEncoder<ILoggingEvent> encoder = new LayoutWrappingEncoder<>();
    encoder.setContext(context);
    encoder.setLayout(layout);
    encoder.start();
    return encoder;
  }

  /**
   * What the pattern {@code %d{HH:mm:ss.SSS} %-5level [%thread] %logger{0}: %msg%n} prints,
   * stack traces included, written by hand: logback's PatternLayout makes some sixty converter
   * lambdas when first used, ~0.05 s of a JVM start.
   */
  static final class TextLayout extends LayoutBase<ILoggingEvent> {
    private final ZoneId zone = ZoneId.systemDefault();

    @Override
    public String doLayout(ILoggingEvent event) {
      StringBuilder sb = new StringBuilder(160);
      LocalTime t = LocalTime.ofInstant(Instant.ofEpochMilli(event.getTimeStamp()), zone);
      digits(sb, t.getHour(), 2).append(':');
      digits(sb, t.getMinute(), 2).append(':');
      digits(sb, t.getSecond(), 2).append('.');
      digits(sb, t.getNano() / 1_000_000, 3).append(' ');
      String level = event.getLevel().toString();
      sb.append(level);
      for (int i = level.length(); i < 5; i++) {
        sb.append(' ');
      }
      sb.append(" [").append(event.getThreadName()).append("] ");
      String logger = event.getLoggerName();
      sb.append(logger, logger.lastIndexOf('.') + 1, logger.length()).append(": ");
      sb.append(event.getFormattedMessage()).append(CoreConstants.LINE_SEPARATOR);
      IThrowableProxy thrown = event.getThrowableProxy();
      if (thrown != null) {
        sb.append(ThrowableProxyUtil.asString(thrown)); // ends with a line separator
      }
      return sb.toString();
    }

    private static StringBuilder digits(StringBuilder sb, int value, int width) {
      String v = Integer.toString(value);
      for (int i = v.length(); i < width; i++) {
        sb.append('0');
      }
      return sb.append(v);
    }
  }
}
