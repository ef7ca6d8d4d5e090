package io.lazypull.cli;

import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import io.lazypull.backend.Manifest;
import io.lazypull.containerd.ContainerdClient;
import io.lazypull.containerd.Labels;
import io.lazypull.erofs.oci.ConvertedImage;
import io.lazypull.erofs.oci.ConvertedLayer;
import io.lazypull.erofs.oci.Platform;
import io.lazypull.erofs.oci.RegistryRef;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
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
    ConvertedImage img;
    try (BlobBackend backend = Backends.open(src.backend(), BackendOptions.defaults())) {
      img = ConvertedImage.read(backend, src.reference(), want, image);
    }
    List<ConvertedLayer> layers = img.layers();
    List<String> chain = chainIds(img.diffIds());
    String top = chain.get(chain.size() - 1);
    String blobBackend = layerBackend != null ? layerBackend : src.backend();
    Manifest index = img.index();
    String manifestDigest = img.manifest().digest();
    String configDigest = img.config().digest();

    try (ContainerdClient c = ContainerdClient.connect(address, namespace, Duration.ofMinutes(5))) {
      c.version(); // a clear error when containerd is not there
      c.withLease("lazypull-pull-" + Long.toHexString(System.nanoTime()), Duration.ofHours(1));
      try {
        // what containerd's own pull writes: the blobs, each labelled with what it references
        // (the garbage collector follows the labels), the config with the snapshot chain
        c.writeContent(configDigest, img.configBytes(), Map.of("containerd.io/gc.ref.snapshot." + snapshotter, top));
        c.writeContent(manifestDigest, img.manifest().bytes(), Map.of("containerd.io/gc.ref.content.config", configDigest));
        c.writeContent(index.digest(), index.bytes(), Map.of("containerd.io/gc.ref.content.m.0", manifestDigest));
        int lazily = 0;
        for (int i = 0; i < layers.size(); i++) {
          if (c.stat(snapshotter, chain.get(i)) != null) {
            continue; // this layer and all below are there (an earlier pull, another image)
          }
          Map<String, String> labels = new LinkedHashMap<>();
          labels.put(Labels.SNAPSHOT_REF, chain.get(i));
          labels.put(Labels.FSID, layers.get(i).fsid());
          labels.put(Labels.BACKEND, blobBackend);
          labels.put(Labels.LAYER, layers.get(i).descriptor().digest());
          String key = "lazypull-pull-" + Long.toHexString(System.nanoTime()) + " " + chain.get(i);
          ContainerdClient.Prepared p = c.prepare(snapshotter, key, i == 0 ? "" : chain.get(i - 1), labels);
          if (!p.alreadyExists()) {
            c.remove(snapshotter, key);
            throw new IOException("snapshotter '" + snapshotter + "' prepared layer " + i + " as an empty snapshot instead of"
                + " mounting it: is it 'lazypull snapshotter' ([proxy_plugins." + snapshotter + "] in containerd's config)?");
          }
          lazily++;
        }
        c.putImage(src.containerdName(), Manifest.OCI_INDEX, index.digest(), index.size(), Map.of());
        System.out.printf("%s: %d layers (%d mounted now, %d there already), %s, in %d ms%n", src.containerdName(),
            layers.size(), lazily, layers.size() - lazily, top, (System.nanoTime() - t0) / 1_000_000);
      } finally {
        c.dropLease();
      }
    }
    return 0;
  }

  private Source source() {
    if (RegistryRef.isRegistry(image)) {
      RegistryRef r = RegistryRef.parse(image);
      if (tag != null) {
        throw new IllegalArgumentException("--tag is for S3 and directory backends; a registry image has its tag in IMAGE");
      }
      String t = r.tag() == null ? "latest" : r.tag();
      String ref = r.digest() != null ? r.digest() : t;
      String n = name != null ? name : r.host() + "/" + r.repository() + (r.digest() != null ? "@" + r.digest() : ":" + t);
      return new Source(r.backendUri(), ref, n);
    }
    if (image.startsWith("oci")) {
      throw new IllegalArgumentException("not a registry image: '" + image + "' (want oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX])");
    }
    if (tag == null || !tag.contains(":")) {
      throw new IllegalArgumentException("an image in " + image + " needs --tag NAME:TAG");
    }
    return new Source(image, tag, name != null ? name : tag);
  }

  /** containerd's chain IDs: the first diff ID, then sha256("PARENT DIFFID") for each next one. */
  static List<String> chainIds(List<String> diffIds) {
    List<String> out = new ArrayList<>();
    String chain = null;
    for (String diffId : diffIds) {
      chain = chain == null ? diffId
          : Digests.SHA256_PREFIX + Digests.sha256Hex(ByteBuffer.wrap((chain + " " + diffId).getBytes(StandardCharsets.UTF_8)));
      out.add(chain);
    }
    return out;
  }
}
