package io.lazypull.daemon;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fault injection for failover tests: the daemon kills itself (as SIGKILL would: no shutdown
 * hooks, the kernel closes its fds) at chosen points of the request path, with a chosen
 * probability. Off unless {@code LAZYPULL_CRASH_AT} is set, e.g.
 * {@code LAZYPULL_CRASH_AT=open:0.2,fetch:0.01,write:0.01}. Never set it in production.
 */
public final class CrashPoints {
  private static final Logger log = LoggerFactory.getLogger(CrashPoints.class);

  /** Where the daemon can be made to crash. */
  public enum Point {
    /** an OPEN was read, its copen not yet written */
    OPEN,
    /** bytes were fetched, not yet written into the cache file */
    FETCH,
    /** bytes were written into the cache file, the READ not yet completed */
    WRITE
  }

  private static final Map<Point, Double> ODDS = parse(System.getenv("LAZYPULL_CRASH_AT"));

  private CrashPoints() {}

  static Map<Point, Double> parse(String spec) {
    Map<Point, Double> odds = new EnumMap<>(Point.class);
    if (spec == null || spec.isBlank()) {
      return odds;
    }
    for (String item : spec.split(",")) {
      String[] kv = item.strip().split(":");
      if (kv.length != 2) {
        throw new IllegalArgumentException("LAZYPULL_CRASH_AT: expected POINT:PROBABILITY, got '" + item + "'");
      }
      odds.put(Point.valueOf(kv[0].strip().toUpperCase(java.util.Locale.ROOT)), Double.parseDouble(kv[1]));
    }
    return odds;
  }

  /** Crashes the process here with the configured probability for {@code point}. */
  static void maybeCrash(Point point) {
    Double p = ODDS.get(point);
    if (p != null && ThreadLocalRandom.current().nextDouble() < p) {
      log.warn("crash point {}: halting now (LAZYPULL_CRASH_AT)", point);
      Runtime.getRuntime().halt(137);
    }
  }
}
