package io.lazypull.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.Digests;
import io.lazypull.backend.loopback.RegistryServer;
import io.lazypull.containerd.loopback.ContainerdServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Pull-and-run time to a container's first output: containerd's own pull (fetch + unpack
 * into overlayfs) against 'lazypull pull' with the lazypull snapshotter, same source image,
 * same loopback registry, runs interleaved, each on a fresh containerd (and a fresh
 * snapshotter: nothing cached) with the page cache dropped. A third row is the same image
 * flattened into one layer (one EROFS mount instead of one per layer), for the layout choice.
 */
@Command(name = "containerd", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "ctr pull + ctr run, time to the container's first output: containerd's overlayfs",
      "snapshotter (full pull and unpack) against the lazypull snapshotter (lazypull pull,",
      "layers mounted lazily), and the lazypull image flattened to one layer. Source image:",
      "busybox, /usr/share/zoneinfo and --tree (default: this JDK) as three gzip layers, in",
      "docker-registry on 127.0.0.1, converted with lazypull convert. Each run: a fresh",
      "containerd and snapshotter, page cache dropped; runs interleaved; medians. Needs root,",
      "containerd, ctr, runc, docker-registry, skopeo, busybox.",
    })
final class BenchContainerdCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration CTR = Duration.ofMinutes(10);

  @Option(names = "--tree", paramLabel = "DIR", defaultValue = "/usr/lib/jvm/java-17-openjdk-amd64",
      description = "The big layer, and its file the container prints: DIR/release (default: ${DEFAULT-VALUE}).")
  Path tree;

  @Option(names = "--runs", defaultValue = "3", description = "Runs per row (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--work-dir", paramLabel = "DIR", defaultValue = "/var/tmp/lpbc",
      description = "Scratch space, emptied first; keep it short: sockets live under it (default: ${DEFAULT-VALUE}).")
  Path work;

  private final Map<String, List<Double>> pullSeconds = new LinkedHashMap<>();

  @Override
  public Integer call() throws Exception {
    PrintStream out = System.out;
    if (!Files.isRegularFile(tree.resolve("release"))) {
      throw new IllegalArgumentException("--tree " + tree + " has no file 'release' for the container to print");
    }
    work = work.toAbsolutePath();
    unmountUnder(work); // an earlier run that was cut short
    run(List.of("rm", "-rf", "--one-file-system", work.toString()));
    Files.createDirectories(work);
    Path layout = work.resolve("layout");
    long bytes = buildLayout(layout);
    out.printf("source image: 3 gzip layers, %.1f MiB uncompressed; flat: the same files in one layer%n", bytes / 1048576.0);
    try (RegistryServer registry = RegistryServer.open(Files.createDirectories(work.resolve("registry")))) {
      for (String ref : List.of("v1", "flat", "warm")) {
        run(List.of("skopeo", "--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false",
            "oci:" + layout + ":" + ref, "docker://" + registry.hostPort() + "/src:" + ref));
        int code = Main.execute("convert", "--work-dir", work.resolve("convert").toString(),
            registry.uri("src:" + ref), registry.uri("conv:" + ref));
        if (code != 0) {
          throw new IOException("lazypull convert of src:" + ref + " failed");
        }
      }
      Map<String, List<Double>> seconds = new LinkedHashMap<>();
      pullSeconds.clear();
      Map<String, Integer> mounts = new LinkedHashMap<>();
      for (String row : List.of("overlayfs (ctr pull)", "lazypull (3 layers)", "lazypull (flattened)")) {
        seconds.put(row, new ArrayList<>());
        pullSeconds.put(row, new ArrayList<>());
      }
      for (int r = 0; r < runs; r++) {
        int i = 0;
        for (String row : seconds.keySet()) {
          Path dir = Files.createDirectories(work.resolve("run-" + r + "-" + i++));
          seconds.get(row).add(oneRun(row, dir, registry, mounts));
        }
      }
      out.printf("%n%-24s %10s %10s %10s %10s %8s%n", "pull + run, first output", "median s", "min s", "max s",
          "pull s", "mounts");
      double base = Stats.median(seconds.values().iterator().next());
      for (Map.Entry<String, List<Double>> e : seconds.entrySet()) {
        double m = Stats.median(e.getValue());
        out.printf("%-24s %10.2f %10.2f %10.2f %10.2f %8d   x%.2f of overlayfs%n", e.getKey(), m,
            e.getValue().stream().mapToDouble(Double::doubleValue).min().orElse(0),
            e.getValue().stream().mapToDouble(Double::doubleValue).max().orElse(0), Stats.median(pullSeconds.get(e.getKey())),
            mounts.get(e.getKey()), m / base);
      }
      out.printf("(mounts: the rootfs overlay plus one EROFS mount per lazypull layer; pull s: until the pull returned)%n");
    } finally {
      unmountUnder(work);
    }
    return 0;
  }

  /** Detaches every mount under {@code dir}, deepest first. */
  private static void unmountUnder(Path dir) throws IOException {
    List<String> targets = new ArrayList<>();
    for (io.lazypull.sys.Mounts.MountInfo m : io.lazypull.sys.Mounts.mountInfos()) {
      if (Path.of(m.mountPoint()).startsWith(dir)) {
        targets.add(m.mountPoint());
      }
    }
    targets.sort(java.util.Comparator.reverseOrder());
    for (String t : targets) {
      io.lazypull.sys.Mounts.unmountOrDetach(Path.of(t));
    }
  }

  /** One timed pull + run of {@code row}; returns seconds to the container's first output. */
  private double oneRun(String row, Path dir, RegistryServer registry, Map<String, Integer> mounts) throws Exception {
    Path sock = dir.resolve("snap.sock");
    Child snapshotter = null;
    ContainerdServer containerd = null;
    try {
      boolean lazy = !row.startsWith("overlayfs");
      if (lazy) {
        snapshotter = Child.lazypull("snapshotter", "256m", List.of("snapshotter", "--address", sock.toString(),
            "--root", dir.resolve("s").toString())).logOnlyTo(dir.resolve("snapshotter.log")).start();
        Stack.await("the snapshotter", () -> Files.exists(sock), snapshotter);
      }
      containerd = ContainerdServer.start(dir.resolve("c"), lazy ? Map.of("lazypull", sock) : Map.of());
      String image;
      if (lazy) {
        // a steady-state snapshotter: its daemon already serves this registry (a small image of it pulled)
        pull(containerd, registry.uri("conv:warm"));
        image = registry.uri(row.contains("flat") ? "conv:flat" : "conv:v1");
      } else {
        image = registry.uri("src:v1");
      }
      String name = image.replaceFirst("^oci\\+http://", "");
      BenchReadCommand.dropCaches();
      long t0 = System.nanoTime();
      if (lazy) {
        pull(containerd, image);
      } else {
        ContainerdServer.Result r = containerd.ctr(CTR, "images", "pull", "--plain-http", name);
        if (r.code() != 0) {
          throw new IOException("ctr images pull: " + r.out());
        }
      }
      pullSeconds.get(row).add((System.nanoTime() - t0) / 1e9);
      long first = firstOutput(containerd, List.of("run", "--rm", "--snapshotter", lazy ? "lazypull" : "overlayfs",
          name, "bench-" + Long.toHexString(System.nanoTime()), "/bin/busybox", "cat", tree + "/release"));
      double s = (first - t0) / 1e9;
      // the rootfs overlay, plus an EROFS mount per lazypull layer (each checked mounted)
      int layers = row.contains("flat") ? 1 : 3;
      if (lazy && countLayerMounts(dir.resolve("s/layers")) < layers) {
        throw new IOException("fewer layer mounts than layers under " + dir.resolve("s/layers"));
      }
      mounts.put(row, lazy ? layers + 1 : 1);
      return s;
    } finally {
      if (containerd != null) {
        containerd.close();
      }
      if (snapshotter != null) {
        snapshotter.stop(15);
        Child stop = Child.lazypull("snapshotter-stop", "128m",
            List.of("snapshotter", "--stop", "--root", dir.resolve("s").toString())).logOnlyTo(dir.resolve("stop.log")).start();
        stop.process().waitFor(120, TimeUnit.SECONDS);
      }
    }
  }

  private static int countLayerMounts(Path layers) throws IOException {
    int n = 0;
    try (var d = Files.newDirectoryStream(layers)) {
      for (Path p : d) {
        if (io.lazypull.sys.Mounts.isMountPoint(p)) {
          n++;
        }
      }
    }
    return n;
  }

  private static void pull(ContainerdServer containerd, String image) throws Exception {
    Child p = Child.lazypull("pull", "256m", List.of("pull", "--address", containerd.socket().toString(), image))
        .logOnlyTo(containerd.socket().resolveSibling("pull.log")).start();
    if (!p.process().waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException("lazypull pull " + image + " failed: " + Files.readString(containerd.socket().resolveSibling("pull.log")));
    }
  }

  /** Runs ctr ARGS; returns System.nanoTime() at its first byte of output, after checking it succeeded. */
  private static long firstOutput(ContainerdServer containerd, List<String> args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("ctr", "-a", containerd.socket().toString()));
    cmd.addAll(args);
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    InputStream in = p.getInputStream();
    int b = in.read();
    long t = System.nanoTime();
    String rest = (b < 0 ? "" : (char) b) + new String(in.readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException("ctr " + String.join(" ", args) + ": " + rest);
    }
    return t;
  }

  /**
   * An OCI layout with three images: v1 (layers busybox, /usr/share/zoneinfo, --tree; gzip),
   * flat (the same files in one gzip layer) and warm (busybox and one small file). Returns
   * v1's uncompressed size.
   */
  private long buildLayout(Path layout) throws Exception {
    Files.createDirectories(layout.resolve("blobs/sha256"));
    Files.writeString(layout.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
    Path stage = Files.createDirectories(work.resolve("stage"));
    Path bb = Files.createDirectories(stage.resolve("busybox/bin"));
    Files.copy(Path.of("/bin/busybox"), bb.resolve("busybox"));
    Files.createSymbolicLink(bb.resolve("sh"), Path.of("busybox"));
    Path zi = Files.createDirectories(stage.resolve("zoneinfo/usr/share"));
    run(List.of("cp", "-a", "/usr/share/zoneinfo", zi.toString()));
    Path big = Files.createDirectories(stage.resolve("big").resolve(tree.getParent().toString().substring(1)));
    run(List.of("cp", "-a", tree.toString(), big.toString()));
    Path warm = Files.createDirectories(stage.resolve("warm/etc"));
    Files.writeString(warm.resolve("warm"), "a small image of the same repository\n");
    Path flat = Files.createDirectories(stage.resolve("flat"));
    for (String d : List.of("busybox", "zoneinfo", "big")) {
      run(List.of("cp", "-a", stage.resolve(d) + "/.", flat.toString()));
    }
    ArrayNode manifests = JSON.createArrayNode();
    long[] size = new long[1];
    manifests.add(image(layout, List.of(stage.resolve("busybox"), stage.resolve("zoneinfo"), stage.resolve("big")), "v1", size));
    manifests.add(image(layout, List.of(flat), "flat", new long[1]));
    manifests.add(image(layout, List.of(stage.resolve("busybox"), warm.getParent()), "warm", new long[1]));
    ObjectNode index = JSON.createObjectNode();
    index.put("schemaVersion", 2);
    index.set("manifests", manifests);
    Files.write(layout.resolve("index.json"), JSON.writeValueAsBytes(index));
    return size[0];
  }

  /** Writes the layers (gzip), config and manifest of one image; returns its index entry. */
  private static ObjectNode image(Path layout, List<Path> layerDirs, String ref, long[] size) throws Exception {
    ArrayNode layers = JSON.createArrayNode();
    ArrayNode diffIds = JSON.createArrayNode();
    for (Path d : layerDirs) {
      Path tar = d.resolveSibling(d.getFileName() + ".tar");
      run(List.of("tar", "--numeric-owner", "--xattrs", "-C", d.toString(), "-cf", tar.toString(), "."));
      size[0] += Files.size(tar);
      diffIds.add("sha256:" + Digests.sha256Hex(tar));
      Path gz = d.resolveSibling(d.getFileName() + ".tar.gz");
      try (InputStream in = Files.newInputStream(tar); OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
        in.transferTo(o);
      }
      layers.add(blob(layout, "application/vnd.oci.image.layer.v1.tar+gzip", Files.readAllBytes(gz)));
    }
    ObjectNode config = JSON.createObjectNode();
    config.put("architecture", "amd64");
    config.put("os", "linux");
    config.putObject("config").putArray("Env").add("PATH=/bin");
    ObjectNode rootfs = config.putObject("rootfs");
    rootfs.put("type", "layers");
    rootfs.set("diff_ids", diffIds);
    ObjectNode m = JSON.createObjectNode();
    m.put("schemaVersion", 2);
    m.put("mediaType", "application/vnd.oci.image.manifest.v1+json");
    m.set("config", blob(layout, "application/vnd.oci.image.config.v1+json", JSON.writeValueAsBytes(config)));
    m.set("layers", layers);
    ObjectNode d = blob(layout, "application/vnd.oci.image.manifest.v1+json", JSON.writeValueAsBytes(m));
    d.putObject("annotations").put("org.opencontainers.image.ref.name", ref);
    return d;
  }

  private static ObjectNode blob(Path layout, String mediaType, byte[] bytes) throws IOException {
    String hex = Digests.sha256Hex(ByteBuffer.wrap(bytes));
    Files.write(layout.resolve("blobs/sha256").resolve(hex), bytes);
    ObjectNode d = JSON.createObjectNode();
    d.put("mediaType", mediaType);
    d.put("digest", "sha256:" + hex);
    d.put("size", bytes.length);
    return d;
  }

  private static void run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(600, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException(String.join(" ", cmd) + ": " + out);
    }
  }
}
