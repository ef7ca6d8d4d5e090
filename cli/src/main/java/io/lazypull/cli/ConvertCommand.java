package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.erofs.oci.Converter;
import io.lazypull.erofs.oci.Platform;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code lazypull convert SRC DEST}: an OCI or Docker image to a lazypull image, pushed. */
@Command(name = "convert", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Convert an OCI or Docker image into a lazypull image and push it: each layer becomes an",
      "EROFS meta blob plus a data blob (mkfs --layout chunked for compressed layers, tar-index",
      "for uncompressed ones, whose tar is then the data blob), whiteouts kept as overlayfs",
      "whiteouts. The image config is kept as it is, so the container runs as before. What is",
      "pushed (an OCI index, one image manifest per platform whose layers are the meta blobs,",
      "annotated, and a manifest of the data blobs) is described in docs/containers.md.",
      "",
      "SRC:  oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]   a registry (https; oci+http:// plain)",
      "      oci:DIR[:TAG], or a DIR with an oci-layout  an OCI image layout",
      "      docker-archive:FILE[:NAME:TAG], or a FILE    a 'docker save' tar",
      "DEST: oci://HOST[:PORT]/REPO[:TAG]                 a registry (default tag: SRC's, else latest)",
      "      s3://BUCKET[/PREFIX][?endpoint=URL&...]      S3 (see docs/backends.md), or file:///DIR:",
      "                                                  blobs by digest plus refs/NAME:TAG (--tag)",
      "",
      "Layers already converted (a cache in --work-dir) whose blobs DEST has are neither",
      "fetched nor converted again; blobs and manifests DEST has are not sent again. Every",
      "blob read is checked against its digest and every layer against its diff ID. Progress",
      "goes to the terminal (nothing when stderr is not one); at the end the index is printed",
      "as DEST@sha256:HEX.",
      ""
    })
final class ConvertCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "SRC", description = "The image to convert.")
  String source;

  @Parameters(index = "1", paramLabel = "DEST", description = "Where to push the converted image.")
  String destination;

  @Option(names = "--tag", paramLabel = "TAG",
      description = {"The tag of the index: a registry's tag (when DEST has none),",
          "or NAME:TAG for S3 and directories (default: SRC's repository and tag)."})
  String tag;

  @Option(names = "--platform", paramLabel = "OS/ARCH[/VARIANT]",
      description = "Which image of a multi-platform SRC to convert (default: this machine's).")
  String platform;

  @Option(names = "--all-platforms", description = "Convert every platform of a multi-platform SRC.")
  boolean allPlatforms;

  @Option(names = "--work-dir", paramLabel = "DIR",
      description = {"The layer cache, and temporary files (removed at the end, also on",
          "failure). Default: $XDG_CACHE_HOME/lazypull/convert, else",
          "~/.cache/lazypull/convert."})
  Path workDir;

  @Option(names = "--layout", paramLabel = "auto|chunked", defaultValue = "auto",
      description = {"auto: tar-index for uncompressed layers (the tar is the data blob;",
          "file-backed mounts only), chunked for compressed ones. chunked: every",
          "layer chunked (the kernel's fscache mode, --frontend kernel, needs it).",
          "Default: ${DEFAULT-VALUE}."})
  String layout;

  @Option(names = "--chunk-size", paramLabel = "BYTES", converter = ByteSizes.class,
      description = "Chunk size of chunked layers, a power of two >= 4K (default: 1M).")
  Long chunkSize;

  @Option(names = "--retries", paramLabel = "N", defaultValue = "4",
      description = "Retries of transient failures, with backoff (default: ${DEFAULT-VALUE}).")
  int retries;

  @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "30s",
      converter = BackendArgs.DurationConverter.class,
      description = "Abort an attempt that makes no progress for this long (default: ${DEFAULT-VALUE}).")
  Duration timeout;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    if (allPlatforms && platform != null) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--platform and --all-platforms exclude each other");
    }
    BackendOptions options = BackendOptions.builder().maxRetries(retries).readTimeout(timeout).build();
    if (!layout.equals("auto") && !layout.equals("chunked")) {
      throw new CommandLine.ParameterException(spec.commandLine(),
          "--layout: want auto or chunked, got '" + layout + "'");
    }
    Converter.Builder b = Converter.builder().source(source).destination(destination).tag(tag)
        .tarIndex(layout.equals("auto"))
        .allPlatforms(allPlatforms).workDir(workDir != null ? workDir : defaultWorkDir())
        .sourceOptions(options).destinationOptions(options);
    TerminalProgress progress = System.console() != null ? new TerminalProgress(System.err) : null;
    if (progress != null) {
      b.listener(progress);
    }
    Converter.Result r;
    try {
      if (platform != null) {
        b.platform(Platform.parse(platform));
      }
      if (chunkSize != null) {
        if (chunkSize > Integer.MAX_VALUE) {
          throw new IllegalArgumentException("--chunk-size too large: " + chunkSize);
        }
        b.chunkSize(chunkSize.intValue());
      }
      r = b.build().convert();
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    } finally {
      if (progress != null) {
        progress.finish();
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    out.printf("converted %s: %d layers converted, %d reused; pushed %d blobs and %d manifests, %s%n",
        String.join(", ", r.platforms().stream().map(Platform::toString).toList()),
        r.layersConverted(), r.layersReused(), r.blobsPushed(), r.manifestsPushed(),
        TerminalProgress.size(r.bytesPushed()));
    out.println(r.destination() + "@" + r.index());
    out.flush();
    return 0;
  }

  static Path defaultWorkDir() {
    String xdg = System.getenv("XDG_CACHE_HOME");
    Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg)
        : Path.of(System.getProperty("user.home"), ".cache");
    return base.resolve("lazypull").resolve("convert");
  }

  /** One status line, rewritten in place at most 5 times a second, then cleared. */
  static final class TerminalProgress implements Converter.Listener {
    private static final long INTERVAL_NANOS = 200_000_000L;
    private final PrintStream err;
    private long last;
    private String lastStep = "";
    private int width;

    TerminalProgress(PrintStream err) {
      this.err = err;
    }

    @Override
    public void progress(Converter.Progress p) {
      long now = System.nanoTime();
      String step = p.layer() + p.step();
      if (step.equals(lastStep) && now - last < INTERVAL_NANOS) {
        return;
      }
      last = now;
      lastStep = step;
      StringBuilder line = new StringBuilder(p.platform().toString());
      if (p.layer() > 0) {
        line.append("  layer ").append(p.layer()).append('/').append(p.layers());
      }
      line.append("  ").append(p.step());
      if (p.total() > 0) {
        line.append(' ').append(size(p.bytes())).append(" / ").append(size(p.total()));
      }
      String s = line.toString();
      err.print("\r" + s + " ".repeat(Math.max(0, width - s.length())));
      err.flush();
      width = s.length();
    }

    void finish() {
      if (width > 0) {
        err.print("\r" + " ".repeat(width) + "\r");
        err.flush();
      }
    }

    static String size(long bytes) {
      if (bytes < 1024) {
        return bytes + " B";
      }
      if (bytes < 1024 * 1024) {
        return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
      }
      if (bytes < (1L << 30)) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024));
      }
      return String.format(Locale.ROOT, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
  }
}
