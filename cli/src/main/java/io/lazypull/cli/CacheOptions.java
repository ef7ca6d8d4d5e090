package io.lazypull.cli;

import io.lazypull.shim.CacheBudget;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The cache's bound and eviction, for 'shim' and 'up' (the options are passed on as they are). */
final class CacheOptions {
  @Option(names = "--cache-size", paramLabel = "BYTES|N%",
      description = "Bound the cache: least recently used ranges are evicted (never one a reader needs at that"
          + " moment), e.g. 20G or 25%% of the cache dir's filesystem (default: no bound).")
  String cacheSize;

  @Option(names = "--cache-window", paramLabel = "BYTES", defaultValue = "1M", converter = ByteSizes.class,
      description = "Eviction granularity: the daemon's --fetch-size (default: ${DEFAULT-VALUE}).")
  long window;

  @Option(names = "--cache-grace", paramLabel = "DURATION", defaultValue = "10m",
      converter = BackendArgs.DurationConverter.class,
      description = "Blobs no mount has used for this long are removed (default: ${DEFAULT-VALUE}).")
  Duration grace;

  @Option(names = "--evict-guard", paramLabel = "DURATION", converter = BackendArgs.DurationConverter.class,
      description = "A range read less than this ago is not evicted (default: 0 for fuse; 5s for fanotify, whose"
          + " reads happen after the answer to their event).")
  Duration guard;

  /** The bound in bytes for a cache in {@code dir}: N% is of its filesystem's size; 0: none. */
  long limitBytes(Path dir) throws IOException {
    if (cacheSize == null) {
      return 0;
    }
    String v = cacheSize.trim();
    if (v.endsWith("%")) {
      double pct;
      try {
        pct = Double.parseDouble(v.substring(0, v.length() - 1));
      } catch (NumberFormatException e) {
        throw new CommandLine.TypeConversionException("--cache-size '" + v + "' is not a percentage");
      }
      if (!(pct > 0 && pct <= 100)) {
        throw new CommandLine.TypeConversionException("--cache-size " + v + ": a percentage is more than 0 and at most 100");
      }
      Path existing = dir.toAbsolutePath();
      while (!Files.exists(existing)) {
        existing = existing.getParent();
      }
      return (long) (Files.getFileStore(existing).getTotalSpace() * pct / 100);
    }
    return new ByteSizes().convert(v);
  }

  CacheBudget.Config config(Path dir, boolean fanotify) throws IOException {
    Duration g = guard != null ? guard : fanotify ? Duration.ofSeconds(5) : Duration.ZERO;
    long limit = limitBytes(dir);
    if (limit != 0 && limit < 4 * window) {
      throw new CommandLine.TypeConversionException("--cache-size " + cacheSize + " is below four windows ("
          + 4 * window + " bytes): nothing could be cached while reading");
    }
    try {
      return new CacheBudget.Config(limit, window, g, grace, Duration.ofSeconds(Math.max(5, g.toSeconds() * 2)));
    } catch (IllegalArgumentException e) {
      throw new CommandLine.TypeConversionException(e.getMessage());
    }
  }

  /** The options as arguments for a child 'shim'. */
  List<String> args() {
    List<String> a = new ArrayList<>();
    if (cacheSize != null) {
      a.addAll(List.of("--cache-size", cacheSize));
    }
    a.addAll(List.of("--cache-window", Long.toString(window), "--cache-grace", grace.toMillis() + "ms"));
    if (guard != null) {
      a.addAll(List.of("--evict-guard", guard.toMillis() + "ms"));
    }
    return a;
  }
}
