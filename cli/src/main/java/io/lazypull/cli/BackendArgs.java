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
        try {
          long n = Long.parseLong(m.group(1));
          return inMillis(value, switch (m.group(2)) {
            case "ms" -> Duration.ofMillis(n);
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            default -> Duration.ofHours(n);
          });
        } catch (NumberFormatException | ArithmeticException e) {
          throw tooLong(value);
        }
      }
      Duration d;
      try {
        d = Duration.parse(value);
      } catch (RuntimeException e) {
        throw new CommandLine.TypeConversionException("'" + value
            + "' is not a duration (want e.g. 500ms, 30s, 2m)");
      }
      return inMillis(value, d);
    }

    /** Timeouts are kept in milliseconds: a duration that does not fit is refused here. */
    private static Duration inMillis(String value, Duration d) {
      try {
        d.toMillis();
        return d;
      } catch (ArithmeticException e) {
        throw tooLong(value);
      }
    }

    private static CommandLine.TypeConversionException tooLong(String value) {
      return new CommandLine.TypeConversionException("'" + value + "' is too long a duration");
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
}
