package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import java.io.IOException;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The backend options fetch, stat and push share: which backend, and how hard to try. */
final class BackendArgs {
  @Option(names = {"-b", "--backend"}, paramLabel = "URI", required = true,
      defaultValue = "${env:LAZYPULL_BACKEND}",
      description = {"Where the blobs are (default: $LAZYPULL_BACKEND):",
          "file:///DIR or a path (a blob directory or an OCI layout),",
          "file:///PATH/layer.tar (one blob),",
          "s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path-style=true],",
          "oci://HOST[:PORT]/REPO, oci+http://HOST[:PORT]/REPO.",
          "See docs/backends.md."})
  String uri;

  @Option(names = "--retries", paramLabel = "N", defaultValue = "4",
      description = "Retries of transient failures (5xx, resets, timeouts), with backoff (default: ${DEFAULT-VALUE}).")
  int retries;

  @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "30s",
      converter = DurationConverter.class,
      description = "Abort an attempt that makes no progress for this long, e.g. 500ms, 30s, 2m (default: ${DEFAULT-VALUE}).")
  Duration timeout;

  @Option(names = "--concurrency", paramLabel = "N", defaultValue = "16",
      description = "Requests in flight at once (default: ${DEFAULT-VALUE}).")
  int concurrency;

  BackendOptions.Builder options() {
    return BackendOptions.builder().maxRetries(retries).readTimeout(timeout)
        .maxConcurrentRequests(concurrency);
  }

  /** Opens the backend; a malformed URI is a usage error (exit 2). */
  BlobBackend open(CommandLine cl, BackendOptions options) throws IOException {
    try {
      return Backends.open(uri, options);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(cl, "--backend: " + e.getMessage());
    }
  }

  BlobBackend open(CommandLine cl) throws IOException {
    try {
      return open(cl, options().build());
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(cl, e.getMessage());
    }
  }

  /** Parses "500ms", "30s", "2m", "1h" or ISO-8601 ("PT30S"). */
  static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
    private static final Pattern SIMPLE = Pattern.compile("(\\d+)(ms|s|m|h)");

    @Override
    public Duration convert(String value) {
      Matcher m = SIMPLE.matcher(value.trim().toLowerCase(Locale.ROOT));
      if (m.matches()) {
        long n = Long.parseLong(m.group(1));
        switch (m.group(2)) {
          case "ms": return Duration.ofMillis(n);
          case "s": return Duration.ofSeconds(n);
          case "m": return Duration.ofMinutes(n);
          default: return Duration.ofHours(n);
        }
      }
      try {
        return Duration.parse(value);
      } catch (RuntimeException e) {
        throw new CommandLine.TypeConversionException("'" + value
            + "' is not a duration (want e.g. 500ms, 30s, 2m)");
      }
    }
  }

  /** Checks a digest argument: sha256 hex or sha256:hex (anything else is a usage error). */
  static final class DigestConverter implements CommandLine.ITypeConverter<String> {
    @Override
    public String convert(String value) {
      try {
        return Digests.normalize(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  /** Parses a byte count: 4096, 128K, 16M, 1G (binary units). */
  static final class SizeConverter implements CommandLine.ITypeConverter<Long> {
    private static final Pattern SIZE = Pattern.compile("(\\d+)([kmgt]?)(i?b)?");

    @Override
    public Long convert(String value) {
      Matcher m = SIZE.matcher(value.trim().toLowerCase(Locale.ROOT));
      if (!m.matches()) {
        throw new CommandLine.TypeConversionException("'" + value
            + "' is not a size (want e.g. 4096, 128K, 16M, 1G)");
      }
      long n = Long.parseLong(m.group(1));
      int shift = "kmgt".indexOf(m.group(2).isEmpty() ? ' ' : m.group(2).charAt(0)) + 1;
      return n << (10 * shift);
    }
  }
}
