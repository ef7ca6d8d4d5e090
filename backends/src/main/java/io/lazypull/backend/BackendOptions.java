package io.lazypull.backend;

import java.time.Clock;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;

/**
 * How a backend fetches: timeouts, retries, backoff, concurrency, credentials and, for tests,
 * the clock, the sleeper and the environment. Immutable; build one with {@link #builder()} or
 * take {@link #defaults()}.
 *
 * <p>Retries: a {@link BackendException.Kind#TRANSIENT TRANSIENT} failure is tried again up to
 * {@link #maxRetries()} times. Before retry {@code n} (0-based) the caller sleeps a random time
 * in {@code [0, min(backoffMax, backoffBase * 2^n)]} ("full jitter"), or exactly that bound when
 * jitter is off.
 */
public final class BackendOptions {
  /** Sleeps between retries; tests pass one that records instead of sleeping. */
  @FunctionalInterface
  public interface Sleeper {
    void sleep(Duration duration) throws InterruptedException;
  }

  private static final Sleeper THREAD_SLEEP = d -> Thread.sleep(d.toMillis(), d.toNanosPart() % 1_000_000);
  private static final BackendOptions DEFAULTS = builder().build();

  // Timeouts
  private final Duration connectTimeout;
  private final Duration readTimeout;
  private final Duration operationTimeout; // null: none
  // Retries
  private final int maxRetries;
  private final Duration backoffBase;
  private final Duration backoffMax;
  private final boolean jitter;
  // Concurrency and uploads
  private final int maxConcurrentRequests;
  private final long multipartThreshold;
  private final int partSize;
  // Identity
  private final Credentials credentials;
  private final Map<String, String> environment;
  // Injected for tests
  private final Clock clock;
  private final Sleeper sleeper;

  private BackendOptions(Builder b) {
    this.connectTimeout = b.connectTimeout;
    this.readTimeout = b.readTimeout;
    this.operationTimeout = b.operationTimeout;
    this.maxRetries = b.maxRetries;
    this.backoffBase = b.backoffBase;
    this.backoffMax = b.backoffMax;
    this.jitter = b.jitter;
    this.maxConcurrentRequests = b.maxConcurrentRequests;
    this.multipartThreshold = b.multipartThreshold;
    this.partSize = b.partSize;
    this.credentials = b.credentials;
    this.environment = b.environment == null ? System.getenv() : Map.copyOf(b.environment);
    this.clock = b.clock;
    this.sleeper = b.sleeper;
  }

  /**
   * Defaults: 10 s connect, 30 s read, no operation timeout, 4 retries from 100 ms to 5 s with
   * jitter, 16 requests.
   */
  public static BackendOptions defaults() {
    return DEFAULTS;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding these options, to change a few. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.connectTimeout = connectTimeout;
    b.readTimeout = readTimeout;
    b.operationTimeout = operationTimeout;
    b.maxRetries = maxRetries;
    b.backoffBase = backoffBase;
    b.backoffMax = backoffMax;
    b.jitter = jitter;
    b.maxConcurrentRequests = maxConcurrentRequests;
    b.multipartThreshold = multipartThreshold;
    b.partSize = partSize;
    b.credentials = credentials;
    b.environment = environment;
    b.clock = clock;
    b.sleeper = sleeper;
    return b;
  }

  /** Time to open a connection. */
  public Duration connectTimeout() {
    return connectTimeout;
  }

  /**
   * Longest wait for the response headers, and longest time a response body may make no
   * progress; after it the attempt is aborted and counts as a TRANSIENT failure.
   */
  public Duration readTimeout() {
    return readTimeout;
  }

  /**
   * Longest time one operation (a size, a read) may take over all its attempts, backoff pauses
   * and waits for a request slot, or null for no bound but the retries. No attempt or pause
   * starts past it, and the attempt running when it passes is aborted (a TRANSIENT failure).
   * For callers that answer someone within a deadline (the daemon's READs); not meant for
   * whole-blob transfers, which may legitimately take longer.
   */
  public Duration operationTimeout() {
    return operationTimeout;
  }

  /** Retries after the first attempt, for TRANSIENT failures only. */
  public int maxRetries() {
    return maxRetries;
  }

  public Duration backoffBase() {
    return backoffBase;
  }

  public Duration backoffMax() {
    return backoffMax;
  }

  /** Full jitter: sleep a uniformly random time up to the backoff bound. */
  public boolean jitter() {
    return jitter;
  }

  /** Requests one backend runs at once; more wait for a slot. */
  public int maxConcurrentRequests() {
    return maxConcurrentRequests;
  }

  /** Files larger than this are uploaded in parts (S3 multipart, registry PATCH chunks). */
  public long multipartThreshold() {
    return multipartThreshold;
  }

  /** Size of one uploaded part or chunk. */
  public int partSize() {
    return partSize;
  }

  /** Explicit credentials, or null to look them up (environment, docker config, AWS chain). */
  public Credentials credentials() {
    return credentials;
  }

  /** The environment variables backends read (credentials, DOCKER_CONFIG, HOME, AWS_*). */
  public Map<String, String> environment() {
    return environment;
  }

  /** Wall clock, used for token expiry. */
  public Clock clock() {
    return clock;
  }

  public Sleeper sleeper() {
    return sleeper;
  }

  @Override
  public String toString() {
    return "BackendOptions[connectTimeout=" + connectTimeout + ", readTimeout=" + readTimeout
        + (operationTimeout == null ? "" : ", operationTimeout=" + operationTimeout)
        + ", maxRetries=" + maxRetries + ", backoff=" + backoffBase + ".." + backoffMax
        + (jitter ? " jittered" : "") + ", maxConcurrentRequests=" + maxConcurrentRequests
        + ", multipartThreshold=" + multipartThreshold + ", partSize=" + partSize
        + ", credentials=" + credentials + "]";
  }

  /** Builds {@link BackendOptions}; every setter checks its argument. */
  public static final class Builder {
    private Duration connectTimeout = Duration.ofSeconds(10);
    private Duration readTimeout = Duration.ofSeconds(30);
    private Duration operationTimeout;
    private int maxRetries = 4;
    private Duration backoffBase = Duration.ofMillis(100);
    private Duration backoffMax = Duration.ofSeconds(5);
    private boolean jitter = true;
    private int maxConcurrentRequests = 16;
    private long multipartThreshold = 64L << 20;
    private int partSize = 16 << 20;
    private Credentials credentials;
    private Map<String, String> environment;
    private Clock clock = Clock.systemUTC();
    private Sleeper sleeper = THREAD_SLEEP;

    private Builder() {}

    public Builder connectTimeout(Duration d) {
      this.connectTimeout = positive(d, "connectTimeout");
      return this;
    }

    public Builder readTimeout(Duration d) {
      this.readTimeout = positive(d, "readTimeout");
      return this;
    }

    /** See {@link BackendOptions#operationTimeout()}; null: no bound but the retries. */
    public Builder operationTimeout(Duration d) {
      this.operationTimeout = d == null ? null : positive(d, "operationTimeout");
      return this;
    }

    public Builder maxRetries(int n) {
      if (n < 0) {
        throw new IllegalArgumentException("maxRetries must be >= 0, got " + n);
      }
      this.maxRetries = n;
      return this;
    }

    /** Backoff before retry n is bounded by {@code min(max, base * 2^n)}. */
    public Builder backoff(Duration base, Duration max) {
      positive(base, "backoff base");
      positive(max, "backoff max");
      if (max.compareTo(base) < 0) {
        throw new IllegalArgumentException("backoff max " + max + " is below base " + base);
      }
      this.backoffBase = base;
      this.backoffMax = max;
      return this;
    }

    public Builder jitter(boolean on) {
      this.jitter = on;
      return this;
    }

    public Builder maxConcurrentRequests(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("maxConcurrentRequests must be >= 1, got " + n);
      }
      this.maxConcurrentRequests = n;
      return this;
    }

    /**
     * Upload files larger than {@code threshold} in parts of {@code partSize} bytes (S3 needs
     * at least 5 MiB per part except the last one).
     */
    public Builder multipart(long threshold, int partSize) {
      if (threshold < 0) {
        throw new IllegalArgumentException("multipart threshold must be >= 0, got " + threshold);
      }
      if (partSize < 1) {
        throw new IllegalArgumentException("part size must be >= 1, got " + partSize);
      }
      this.multipartThreshold = threshold;
      this.partSize = partSize;
      return this;
    }

    public Builder credentials(Credentials c) {
      this.credentials = c;
      return this;
    }

    /** The environment to read instead of {@link System#getenv()} (for tests). */
    public Builder environment(Map<String, String> env) {
      this.environment = Objects.requireNonNull(env, "environment");
      return this;
    }

    public Builder clock(Clock c) {
      this.clock = Objects.requireNonNull(c, "clock");
      return this;
    }

    public Builder sleeper(Sleeper s) {
      this.sleeper = Objects.requireNonNull(s, "sleeper");
      return this;
    }

    public BackendOptions build() {
      return new BackendOptions(this);
    }

    private static Duration positive(Duration d, String what) {
      Objects.requireNonNull(d, what);
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(what + " must be positive, got " + d);
      }
      return d;
    }
  }
}
