package io.lazypull.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import org.slf4j.LoggerFactory;

/** Quiets the loopback servers' own logging: S3Proxy, Jetty and jclouds log at INFO. */
final class ServerLogs {
  private ServerLogs() {}

  static void quiet() {
    for (String name : new String[] {"org.gaul", "org.jclouds", "jclouds", "org.eclipse.jetty", "org.gaul.shaded"}) {
      if (LoggerFactory.getLogger(name) instanceof Logger l) {
        l.setLevel(Level.WARN);
      }
    }
  }
}
