package io.lazypull.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * S3Proxy on loopback for a measurement taken outside a benchmark's JVM (ci/mem-stack measures
 * a whole {@code lazypull up} stack against it): serves a directory in S3Proxy's file-system
 * layout, as a {@code bench read} run leaves it in WORK/s3, until its standard input closes.
 */
@Command(name = "s3proxy", hidden = true, mixinStandardHelpOptions = true,
    description = {
      "Serves S3Proxy on 127.0.0.1 (SigV4) over a directory until standard input closes.",
      "Prints three lines: the backend URI, then AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...",
      "A 'bench read --work-dir W' run leaves its S3 store in W/s3 (bucket 'bench', prefix 'blobs/').",
      "Needs S3Proxy on the class path: run it as 'ci/bench s3proxy'."})
final class BenchS3ProxyCommand implements Callable<Integer> {
  @Option(names = "--store", required = true, paramLabel = "DIR",
      description = "The directory S3Proxy stores objects in (BUCKET/KEY files).")
  Path store;

  @Option(names = "--bucket", defaultValue = "bench", description = "The bucket (made if missing; default: ${DEFAULT-VALUE}).")
  String bucket;

  @Option(names = "--prefix", defaultValue = "blobs/", description = "The key prefix in the URI printed (default: ${DEFAULT-VALUE}).")
  String prefix;

  @Override
  public Integer call() throws Exception {
    if (!BenchBackendsCommand.s3ProxyPresent()) {
      System.err.println("lazypull: S3Proxy is not on the class path; run this as 'ci/bench s3proxy'");
      return 2;
    }
    try (var s3 = start(store, bucket)) {
      PrintStream out = System.out;
      out.println(s3.uri(bucket + "/" + prefix));
      env(s3).forEach((k, v) -> out.println(k + "=" + v));
      out.flush();
      while (System.in.read() >= 0) {
        // serve until the caller closes our input (or goes away)
      }
    }
    return 0;
  }

  /**
   * S3Proxy on 127.0.0.1 over {@code store} (S3Proxy's file-system layout) with {@code bucket}
   * made, quiet, for a benchmark. Only where S3Proxy is on the class path ({@link
   * BenchBackendsCommand#s3ProxyPresent}); the caller closes it.
   */
  static io.lazypull.backend.loopback.S3ProxyServer start(Path store, String bucket) throws Exception {
    ServerLogs.quiet();
    var s3 = io.lazypull.backend.loopback.S3ProxyServer.start(Files.createDirectories(store), "bench", "bench-secret");
    s3.createBucket(bucket);
    return s3;
  }

  /** What a lazypull process needs in its environment to sign requests to {@code s3}. */
  static Map<String, String> env(io.lazypull.backend.loopback.S3ProxyServer s3) {
    Map<String, String> env = new LinkedHashMap<>();
    env.put("AWS_ACCESS_KEY_ID", s3.identity());
    env.put("AWS_SECRET_ACCESS_KEY", s3.credential());
    return env;
  }

  /** Uploads {@code blobs} to {@code uri} with 'lazypull push', in a JVM of its own. */
  static void push(String uri, Map<String, String> env, List<Path> blobs) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("push", "--backend", uri));
    blobs.forEach(b -> args.add(b.toString()));
    if (Child.lazypull("push", "256m", args).env(env).start().process().waitFor() != 0) {
      throw new IOException("push to S3Proxy failed");
    }
  }
}
