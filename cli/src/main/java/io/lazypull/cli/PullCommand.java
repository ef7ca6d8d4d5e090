package io.lazypull.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Manifest;
import io.lazypull.containerd.ContainerdClient;
import io.lazypull.containerd.Labels;
import io.lazypull.erofs.oci.ImageFormat;
import io.lazypull.erofs.oci.Platform;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "pull", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Make a converted image runnable by containerd, lazily: no layer data is fetched.",
      "",
      "Reads the image's index, its manifest for --platform and its config (all small),",
      "writes them into containerd's content store, creates the image in containerd and",
      "prepares its layers in the snapshotter (through containerd, with the labels the",
      "lazypull snapshotter needs: each layer's fsid and backend). Afterwards",
      "  ctr run --snapshotter lazypull IMAGE ID CMD",
      "starts a container whose files are fetched as they are read.",
      "",
      "IMAGE: oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]   a registry (oci+http:// plain http)",
      "       s3://BUCKET/PREFIX?...  file:///DIR         with --tag NAME:TAG",
      "The image is named in containerd HOST[:PORT]/REPO:TAG (registries) or NAME:TAG",
      "(--name to choose). Images are made by 'lazypull convert' (docs/containers.md).",
    })
final class PullCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern REGISTRY =
      Pattern.compile("(oci|oci\\+https?)://([^/]+)/([^:@]+)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?");

  @Option(names = "--address", paramLabel = "SOCK", defaultValue = "/run/containerd/containerd.sock",
      description = "containerd's socket (default: ${DEFAULT-VALUE}).")
  Path address;

  @Option(names = {"-n", "--namespace"}, paramLabel = "NS", defaultValue = "default",
      description = "containerd namespace (default: ${DEFAULT-VALUE}).")
  String namespace;

  @Option(names = "--snapshotter", paramLabel = "NAME", defaultValue = "lazypull",
      description = "The proxy snapshotter's name in containerd's config (default: ${DEFAULT-VALUE}).")
  String snapshotter;

  @Option(names = "--platform", paramLabel = "OS/ARCH[/VARIANT]",
      description = "The platform to pull (default: this machine's).")
  String platform;

  @Option(names = "--tag", paramLabel = "NAME:TAG", description = "The image in an S3 or directory backend (refs/NAME:TAG).")
  String tag;

  @Option(names = "--name", paramLabel = "NAME", description = "The image's name in containerd.")
  String name;

  @Option(names = "--backend", paramLabel = "URI",
      description = "The backend the snapshotter fetches blobs from (default: where IMAGE is).")
  String layerBackend;

  @Parameters(index = "0", paramLabel = "IMAGE", description = "The converted image.")
  String image;

  /** Where the image is, and how containerd will name it. */
  private record Source(String backend, String reference, String containerdName) {}

  @Override
  public Integer call() throws Exception {
    Platform want = platform == null ? Platform.host() : Platform.parse(platform);
    Source src = source();
    long t0 = System.nanoTime();
    List<Layer> layers;
    Manifest index;
    String manifestDigest;
    Manifest manifest;
    String configDigest;
    String configMediaType;
    byte[] config;
    try (BlobBackend backend = Backends.open(src.backend(), BackendOptions.defaults())) {
      index = backend.manifest(src.reference());
      if (!index.mediaType().equals(Manifest.OCI_INDEX)) {
        throw new IOException(image + " is not a lazypull image: its top manifest is " + index.mediaType()
            + ", not an OCI index (convert it with 'lazypull convert')");
      }
      JsonNode entry = pickManifest(JSON.readTree(index.bytes()), want);
      manifestDigest = entry.path("digest").asText();
      manifest = backend.manifest(manifestDigest);
      if (manifest.bytes().length != entry.path("size").asLong()) {
        throw new IOException("manifest " + manifestDigest + " has " + manifest.bytes().length + " bytes, the index says "
            + entry.path("size").asLong());
      }
      JsonNode m = JSON.readTree(manifest.bytes());
      configDigest = m.path("config").path("digest").asText();
      configMediaType = m.path("config").path("mediaType").asText();
      config = fetchVerified(backend, configDigest, m.path("config").path("size").asLong());
      layers = layers(m, JSON.readTree(config));
    }
    List<String> chain = chainIds(layers);
    String top = chain.get(chain.size() - 1);
    String blobBackend = layerBackend != null ? layerBackend : src.backend();
    String indexDigest = "sha256:" + sha256(index.bytes());

    try (ContainerdClient c = ContainerdClient.connect(address, namespace, Duration.ofMinutes(5))) {
      c.version(); // a clear error when containerd is not there
      c.withLease("lazypull-pull-" + Long.toHexString(System.nanoTime()), Duration.ofHours(1));
      try {
        // what containerd's own pull writes: the blobs, each labelled with what it references
        // (the garbage collector follows the labels), the config with the snapshot chain
        c.writeContent(configDigest, config, Map.of("containerd.io/gc.ref.snapshot." + snapshotter, top));
        c.writeContent(manifestDigest, manifest.bytes(), Map.of("containerd.io/gc.ref.content.config", configDigest));
        c.writeContent(indexDigest, index.bytes(), Map.of("containerd.io/gc.ref.content.m.0", manifestDigest));
        int lazily = 0;
        for (int i = 0; i < layers.size(); i++) {
          if (c.stat(snapshotter, chain.get(i)) != null) {
            continue; // this layer and all below are there (an earlier pull, another image)
          }
          Map<String, String> labels = new LinkedHashMap<>();
          labels.put(Labels.SNAPSHOT_REF, chain.get(i));
          labels.put(Labels.FSID, layers.get(i).fsid());
          labels.put(Labels.BACKEND, blobBackend);
          labels.put(Labels.LAYER, layers.get(i).digest());
          String key = "lazypull-pull-" + Long.toHexString(System.nanoTime()) + " " + chain.get(i);
          ContainerdClient.Prepared p = c.prepare(snapshotter, key, i == 0 ? "" : chain.get(i - 1), labels);
          if (!p.alreadyExists()) {
            c.remove(snapshotter, key);
            throw new IOException("snapshotter '" + snapshotter + "' prepared layer " + i + " as an empty snapshot instead of"
                + " mounting it: is it 'lazypull snapshotter' ([proxy_plugins." + snapshotter + "] in containerd's config)?");
          }
          lazily++;
        }
        c.putImage(src.containerdName(), Manifest.OCI_INDEX, indexDigest, index.bytes().length, Map.of());
        System.out.printf("%s: %d layers (%d mounted now, %d there already), %s, in %d ms%n", src.containerdName(),
            layers.size(), lazily, layers.size() - lazily, top, (System.nanoTime() - t0) / 1_000_000);
      } finally {
        c.dropLease();
      }
    }
    return 0;
  }

  private Source source() {
    Matcher m = REGISTRY.matcher(image);
    if (m.matches()) {
      if (tag != null) {
        throw new IllegalArgumentException("--tag is for S3 and directory backends; a registry image has its tag in IMAGE");
      }
      String t = m.group(4) == null ? "latest" : m.group(4);
      String ref = m.group(5) != null ? m.group(5) : t;
      String host = m.group(2).replaceAll(".*@", "");
      String n = name != null ? name : host + "/" + m.group(3) + (m.group(5) != null ? "@" + m.group(5) : ":" + t);
      return new Source(m.group(1) + "://" + m.group(2) + "/" + m.group(3), ref, n);
    }
    if (image.startsWith("oci")) {
      throw new IllegalArgumentException("not a registry image: '" + image + "' (want oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX])");
    }
    if (tag == null || !tag.contains(":")) {
      throw new IllegalArgumentException("an image in " + image + " needs --tag NAME:TAG");
    }
    return new Source(image, tag, name != null ? name : tag);
  }

  /** The index entry for {@code want}: never an unknown/unknown one (the blobs manifest). */
  private JsonNode pickManifest(JsonNode index, Platform want) throws IOException {
    List<String> seen = new ArrayList<>();
    for (JsonNode e : index.path("manifests")) {
      JsonNode p = e.path("platform");
      Platform pl = new Platform(p.path("os").asText(""), p.path("architecture").asText(""), p.path("variant").asText(""),
          p.path("os.version").asText(""));
      if (!e.path("mediaType").asText().equals(Manifest.OCI_MANIFEST) || pl.os().equals(ImageFormat.UNKNOWN)) {
        continue;
      }
      seen.add(pl.toString());
      if (want.accepts(pl)) {
        return e;
      }
    }
    throw new IOException(image + " has no manifest for " + want + " (it has: " + (seen.isEmpty() ? "none" : String.join(", ", seen)) + ")");
  }

  /** A lazypull layer: its meta blob's digest, its fsid, and the diff ID of the layer it is. */
  record Layer(String digest, String fsid, String diffId) {}

  private List<Layer> layers(JsonNode manifest, JsonNode config) throws IOException {
    JsonNode diffIds = config.path("rootfs").path("diff_ids");
    JsonNode ls = manifest.path("layers");
    if (ls.size() == 0 || ls.size() != diffIds.size()) {
      throw new IOException(image + ": " + ls.size() + " layers but " + diffIds.size() + " diff IDs in the config");
    }
    List<Layer> out = new ArrayList<>();
    for (int i = 0; i < ls.size(); i++) {
      JsonNode l = ls.get(i);
      if (!l.path("mediaType").asText().equals(ImageFormat.META_MEDIA_TYPE)) {
        throw new IOException(image + ": layer " + i + " is " + l.path("mediaType").asText() + ", not a lazypull layer ("
            + ImageFormat.META_MEDIA_TYPE + "): convert the image with 'lazypull convert'");
      }
      String fsid = l.path("annotations").path(ImageFormat.FSID).asText("");
      String digest = l.path("digest").asText("");
      if (!fsid.matches("[0-9a-f]{64}") || !digest.equals("sha256:" + fsid)) {
        throw new IOException(image + ": layer " + i + " has fsid '" + fsid + "' but digest " + digest);
      }
      String diffId = diffIds.get(i).asText();
      String said = l.path("annotations").path(ImageFormat.SOURCE_DIFFID).asText(diffId);
      if (!said.equals(diffId)) {
        throw new IOException(image + ": layer " + i + " was converted from " + said + " but the config's diff ID is " + diffId);
      }
      out.add(new Layer(digest, fsid, diffId));
    }
    return out;
  }

  /** containerd's chain IDs: the first diff ID, then sha256("PARENT DIFFID") for each next one. */
  static List<String> chainIds(List<Layer> layers) {
    List<String> out = new ArrayList<>();
    String chain = null;
    for (Layer l : layers) {
      chain = chain == null ? l.diffId() : "sha256:" + sha256((chain + " " + l.diffId()).getBytes(StandardCharsets.UTF_8));
      out.add(chain);
    }
    return out;
  }

  private static byte[] fetchVerified(BlobBackend backend, String digest, long size) throws IOException {
    if (size > Manifest.MAX_SIZE) {
      throw new IOException("config " + digest + " is " + size + " bytes; more than " + Manifest.MAX_SIZE + " is not a config");
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream((int) size);
    backend.transferTo(digest, Channels.newChannel(out));
    byte[] b = out.toByteArray();
    if (b.length != size || !("sha256:" + sha256(b)).equals(digest)) {
      throw new IOException("config " + digest + " from " + backend.describe() + " does not match its digest or size");
    }
    return b;
  }

  static String sha256(byte[] b) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
