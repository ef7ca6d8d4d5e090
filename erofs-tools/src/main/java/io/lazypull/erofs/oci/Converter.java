package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.BackendException;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import io.lazypull.backend.Manifest;
import io.lazypull.erofs.Mkfs;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * convert, top-down:
 *
 *   source.top()                          a manifest, or an index -> the platforms asked for
 *   per platform:
 *     config: fetch (verified), read diff_ids, push
 *     per layer i:
 *       cache hit and the destination has its blobs?  -> reuse, nothing fetched
 *       else fetch (verified) -> LayerConverter (mkfs; diff ID checked) -> push meta + data
 *            -> cache entry
 *     image manifest: config unchanged, layers[i] = meta blob i, annotated
 *   blobs manifest ({} config, every data blob), then the image manifests by digest, then
 *   the index by tag; a manifest the destination already has is not put again.
 *
 * One layer at a time, in a private directory under <work-dir>/tmp that is removed when the
 * layer is done and, with everything else, when convert ends, also by failure (a SIGKILLed
 * run's directory is removed by the next run). Peak disk use: about the largest layer's
 * compressed + uncompressed size + its data blob.
 */

/**
 * Converts an OCI or Docker image into a lazypull image (docs/containers.md) and pushes it to
 * a registry, S3 or a blob directory. Make one with {@link #builder()}.
 *
 * <pre>{@code
 * Converter.Result r = Converter.builder()
 *     .source("oci://registry.example/app:1.0").destination("oci://registry.example/app:1.0-lazy")
 *     .build().convert();
 * }</pre>
 */
public final class Converter {
  private static final Logger log = LoggerFactory.getLogger(Converter.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int MAX_CONFIG = 64 << 20;

  private final String source;
  private final String destination;
  private final String tag;
  private final Platform platform;
  private final boolean platformExplicit;
  private final boolean allPlatforms;
  private final Path workDir;
  private final int chunkSize;
  private final boolean tarIndex;
  private final BackendOptions sourceOptions;
  private final BackendOptions destinationOptions;
  private final Listener listener;

  private Converter(Builder b) {
    this.source = Objects.requireNonNull(b.source, "source");
    this.destination = Objects.requireNonNull(b.destination, "destination");
    this.tag = b.tag;
    this.platform = b.platform != null ? b.platform : Platform.host();
    this.platformExplicit = b.platform != null;
    this.allPlatforms = b.allPlatforms;
    this.workDir = Objects.requireNonNull(b.workDir, "workDir");
    this.chunkSize = b.chunkSize;
    this.tarIndex = b.tarIndex;
    this.sourceOptions = b.sourceOptions;
    this.destinationOptions = b.destinationOptions;
    this.listener = b.listener;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Progress: where the conversion is. Calls come from the converting thread. */
  public interface Listener {
    /** A step began or advanced ({@code bytes} of {@code total}; total -1 when unknown). */
    void progress(Progress p);
  }

  /**
   * @param platform the platform being converted
   * @param layer 1-based layer number, 0 before the first
   * @param layers layers of this platform
   * @param step "config", "fetch", "convert", "push", "cached", "manifests"
   * @param bytes bytes of this step done
   * @param total bytes of this step, or -1
   */
  public record Progress(Platform platform, int layer, int layers, String step, long bytes, long total) {}

  /**
   * What a conversion did.
   *
   * @param index the index's digest
   * @param destination where the index is tagged, e.g. oci+http://127.0.0.1:5000/app:1.0
   * @param platforms the platforms converted
   * @param layersConverted layers fetched and converted
   * @param layersReused layers found in the cache with their blobs at the destination
   * @param blobsPushed blobs uploaded (not already there)
   * @param bytesPushed bytes uploaded, blobs and manifests
   * @param manifestsPushed manifests and index put (not already there)
   */
  public record Result(String index, String destination, List<Platform> platforms, int layersConverted,
      int layersReused, int blobsPushed, long bytesPushed, int manifestsPushed) {}

  /** One platform's image: where it came from and what it became. */
  private record Converted(Platform platform, String sourceManifest, Descriptor config,
      List<ConvertedLayer> layers) {}

  /** Counters of one run. */
  private static final class Counts {
    int converted;
    int reused;
    int blobsPushed;
    long bytesPushed;
    int manifestsPushed;
  }

  /**
   * Converts and pushes.
   *
   * @throws IllegalArgumentException for a malformed or unsupported source or destination
   * @throws BadManifestException for a source image lazypull cannot convert (the message says
   *     why: a bad manifest, an unsupported media type, a layer that does not match its diff ID)
   * @throws BackendException when reading or pushing fails (a missing image or blob, bytes
   *     that do not match their digest, a refusal)
   */
  public Result convert() throws IOException {
    Path tmp = privateTempDir();
    Thread cleanup = new Thread(() -> deleteTree(tmp), "lazypull-convert-cleanup");
    Runtime.getRuntime().addShutdownHook(cleanup);
    try (ImageSource src = ImageRefs.openSource(source, sourceOptions);
        ImageRefs.Destination dest = ImageRefs.openDestination(destination, tag, src, destinationOptions)) {
      return convert(src, dest, tmp);
    } finally {
      deleteTree(tmp);
      try {
        Runtime.getRuntime().removeShutdownHook(cleanup);
      } catch (IllegalStateException shuttingDown) {
        // the hook runs anyway
      }
    }
  }

  private Result convert(ImageSource src, ImageRefs.Destination dest, Path tmp) throws IOException {
    Counts counts = new Counts();
    LayerCache cache = new LayerCache(workDir);
    Manifest top = src.top();
    List<Converted> images = new ArrayList<>();
    if (top.isIndex()) {
      for (Descriptor d : selectPlatforms(ImageIndex.parse(top))) {
        Manifest m = src.manifest(d);
        images.add(convertImage(src, m, d.platform(), dest.backend(), cache, tmp, counts));
      }
    } else if (ImageManifest.isImageManifest(top.mediaType())) {
      Converted c = convertImage(src, top, null, dest.backend(), cache, tmp, counts);
      if (platformExplicit && !platform.accepts(c.platform())) {
        throw new BadManifestException(src.describe() + " is an image for " + c.platform()
            + ", not " + platform);
      }
      images.add(c);
    } else {
      throw new BadManifestException(src.describe() + " has media type " + top.mediaType()
          + ", which lazypull does not read (OCI and Docker schema 2 manifests and indexes)");
    }
    listener.progress(new Progress(images.get(images.size() - 1).platform(), 0, 0, "manifests", 0, -1));
    Manifest index = pushManifests(src, top, images, dest, tmp, counts);
    return new Result(index.digest(), dest.display(), images.stream().map(Converted::platform).toList(),
        counts.converted, counts.reused, counts.blobsPushed, counts.bytesPushed, counts.manifestsPushed);
  }

  /** The index entries to convert: all runnable ones, or the first the platform accepts. */
  private List<Descriptor> selectPlatforms(ImageIndex index) throws BadManifestException {
    List<Descriptor> runnable = index.images();
    if (allPlatforms) {
      if (runnable.isEmpty()) {
        throw new BadManifestException("index " + index.digest() + " lists no image manifest");
      }
      return runnable;
    }
    Optional<Descriptor> d = index.image(platform);
    if (d.isPresent()) {
      return List.of(d.get());
    }
    throw new BadManifestException("no image for " + platform + " in index " + index.digest() + " (it has "
        + String.join(", ", runnable.stream().map(r -> String.valueOf(r.platform())).toList())
        + "; use --platform or --all-platforms)");
  }

  private Converted convertImage(ImageSource src, Manifest m, Platform indexPlatform,
      BlobBackend dest, LayerCache cache, Path tmp, Counts counts) throws IOException {
    String where = "manifest " + m.digest();
    ImageManifest manifest = ImageManifest.parse(m);
    Descriptor config = manifest.config();
    if (!config.mediaType().equals(ImageFormat.OCI_CONFIG) && !config.mediaType().equals(ImageFormat.DOCKER_CONFIG)) {
      throw new BadManifestException(where + ": config media type " + config.mediaType()
          + " is not an image config (an artifact, not an image?)");
    }
    if (config.size() > MAX_CONFIG) {
      throw new BadManifestException(where + ": config of " + config.size() + " bytes is too large");
    }
    List<Descriptor> layers = manifest.layers();

    Platform p = indexPlatform != null ? indexPlatform : platform;
    listener.progress(new Progress(p, 0, layers.size(), "config", 0, config.size()));
    Path configFile = tmp.resolve("config-" + config.hex());
    src.fetch(config, configFile, n -> { });
    ImageConfig cfg = ImageConfig.parse(Files.readAllBytes(configFile), config.digest());
    if (indexPlatform == null) {
      p = cfg.platform();
    }
    List<String> diffIds = cfg.diffIds();
    if (diffIds.size() != layers.size()) {
      throw new BadManifestException(where + " has " + layers.size() + " layers but its config lists "
          + diffIds.size() + " diff_ids");
    }

    List<ConvertedLayer> converted = new ArrayList<>();
    for (int i = 0; i < layers.size(); i++) {
      converted.add(convertLayer(src, layers.get(i), diffIds.get(i), p, i + 1, layers.size(), dest, cache,
          tmp, counts));
    }
    push(dest, configFile, config.digest(), counts);
    Files.delete(configFile);
    return new Converted(p, src.imageDigest(m), config, converted);
  }

  private ConvertedLayer convertLayer(ImageSource src, Descriptor layer, String diffId, Platform p,
      int number, int count, BlobBackend dest, LayerCache cache, Path tmp, Counts counts)
      throws IOException {
    if (!ImageFormat.UNCOMPRESSED_LAYERS.contains(layer.mediaType())
        && !ImageFormat.COMPRESSED_LAYERS.containsKey(layer.mediaType())) {
      throw new BadManifestException("layer " + number + " (" + layer.digest() + ") has media type "
          + layer.mediaType() + ", which lazypull does not convert (tar, tar+gzip, tar+zstd layers)");
    }
    String options = LayerCache.options(layer.mediaType(), chunkSize, tarIndex);
    Optional<ConvertedLayer> known = cache.get(layer.hex(), options);
    if (known.isPresent() && known.get().sourceDiffId().equals(diffId) && present(dest, known.get())) {
      listener.progress(new Progress(p, number, count, "cached", layer.size(), layer.size()));
      counts.reused++;
      return known.get();
    }
    Path dir = Files.createDirectory(tmp.resolve("layer-" + number + "-" + layer.hex()));
    try {
      Path blob = dir.resolve("source");
      long[] fetched = {0};
      listener.progress(new Progress(p, number, count, "fetch", 0, layer.size()));
      src.fetch(layer, blob, n -> {
        fetched[0] += n;
        listener.progress(new Progress(p, number, count, "fetch", fetched[0], layer.size()));
      });
      listener.progress(new Progress(p, number, count, "convert", 0, -1));
      LayerConverter.Output out = LayerConverter.convert(blob, layer, diffId, dir, chunkSize,
          tarIndex);
      long size = Files.size(out.meta()) + Files.size(out.data());
      listener.progress(new Progress(p, number, count, "push", 0, size));
      push(dest, out.data(), out.layer().dataBlobs().get(0).digest(), counts);
      push(dest, out.meta(), Digests.SHA256_PREFIX + out.layer().fsid(), counts);
      listener.progress(new Progress(p, number, count, "push", size, size));
      cache.put(layer.hex(), options, out.layer());
      counts.converted++;
      return out.layer();
    } finally {
      deleteTree(dir);
    }
  }

  /** Whether the destination has every blob of a converted layer, with the right sizes. */
  private static boolean present(BlobBackend dest, ConvertedLayer layer) throws IOException {
    List<ConvertedLayer.Blob> blobs = new ArrayList<>(layer.dataBlobs());
    blobs.add(new ConvertedLayer.Blob(Digests.SHA256_PREFIX + layer.fsid(), layer.metaSize()));
    return present(dest, blobs);
  }

  private static boolean present(BlobBackend dest, List<ConvertedLayer.Blob> blobs) throws IOException {
    for (ConvertedLayer.Blob b : blobs) {
      try {
        if (dest.size(b.digest()) != b.size()) {
          return false;
        }
      } catch (BackendException e) {
        if (e.isNotFound()) {
          return false;
        }
        throw e;
      }
    }
    return true;
  }

  /** Uploads a file as the blob {@code digest} unless the destination has it. */
  private static void push(BlobBackend dest, Path file, String digest, Counts counts)
      throws IOException {
    long size = Files.size(file);
    if (present(dest, List.of(new ConvertedLayer.Blob(digest, size)))) {
      return;
    }
    if (!dest.put(file).equals(Digests.normalize(digest))) {
      throw new IOException(file + " changed while it was pushed");
    }
    counts.blobsPushed++;
    counts.bytesPushed += size;
  }

  /** The blobs manifest, each image manifest, then the index under the destination's tag. */
  private Manifest pushManifests(ImageSource src, Manifest top, List<Converted> images,
      ImageRefs.Destination dest, Path tmp, Counts counts) throws IOException {
    BlobBackend b = dest.backend();
    Path empty = Files.writeString(tmp.resolve("empty-config"), ImageFormat.EMPTY_CONFIG);
    Descriptor emptyConfig = new Descriptor(ImageFormat.BLOBS_ARTIFACT_TYPE,
        Digests.SHA256_PREFIX + Digests.sha256Hex(empty), ImageFormat.EMPTY_CONFIG.length());
    push(b, empty, emptyConfig.digest(), counts);

    Map<String, ConvertedLayer.Blob> data = new LinkedHashMap<>();
    List<Descriptor> entries = new ArrayList<>();
    for (Converted c : images) {
      ObjectNode m = JSON.createObjectNode();
      m.put("schemaVersion", 2);
      m.put("mediaType", Manifest.OCI_MANIFEST);
      m.set("config", c.config().toJson());
      ArrayNode layers = m.putArray("layers");
      for (ConvertedLayer l : c.layers()) {
        layers.add(l.descriptor().toJson());
        l.dataBlobs().forEach(d -> data.putIfAbsent(d.digest(), d));
      }
      m.putObject("annotations").put(ImageFormat.SOURCE_IMAGE, c.sourceManifest());
      Manifest image = new Manifest(Manifest.OCI_MANIFEST, JSON.writeValueAsBytes(m));
      putManifest(b, image.digest(), image, counts);
      entries.add(new Descriptor(Manifest.OCI_MANIFEST, image.digest(), image.size(), Map.of(),
          c.platform(), null));
    }

    ObjectNode blobs = JSON.createObjectNode();
    blobs.put("schemaVersion", 2);
    blobs.put("mediaType", Manifest.OCI_MANIFEST);
    blobs.put("artifactType", ImageFormat.BLOBS_ARTIFACT_TYPE);
    blobs.set("config", emptyConfig.toJson());
    ArrayNode dataLayers = blobs.putArray("layers");
    for (ConvertedLayer.Blob d : data.values()) {
      dataLayers.add(new Descriptor(ImageFormat.DATA_MEDIA_TYPE, d.digest(), d.size()).toJson());
    }
    Manifest blobsManifest = new Manifest(Manifest.OCI_MANIFEST, JSON.writeValueAsBytes(blobs));
    putManifest(b, blobsManifest.digest(), blobsManifest, counts);
    entries.add(new Descriptor(Manifest.OCI_MANIFEST, blobsManifest.digest(), blobsManifest.size(),
        Map.of(), new Platform(ImageFormat.UNKNOWN, ImageFormat.UNKNOWN, "", ""),
        ImageFormat.BLOBS_ARTIFACT_TYPE));

    ObjectNode idx = JSON.createObjectNode();
    idx.put("schemaVersion", 2);
    idx.put("mediaType", Manifest.OCI_INDEX);
    ArrayNode list = idx.putArray("manifests");
    entries.forEach(e -> list.add(e.toJson()));
    ObjectNode a = idx.putObject("annotations");
    a.put(ImageFormat.SOURCE_IMAGE, src.imageDigest(top));
    a.put(ImageFormat.SOURCE_REF, src.describe());
    Manifest index = new Manifest(Manifest.OCI_INDEX, JSON.writeValueAsBytes(idx));
    putManifest(b, dest.reference(), index, counts);
    return index;
  }

  /** Puts a manifest unless the reference already names these exact bytes. */
  private static void putManifest(BlobBackend b, String reference, Manifest m, Counts counts)
      throws IOException {
    try {
      if (b.manifest(reference).digest().equals(m.digest())) {
        return;
      }
    } catch (BackendException e) {
      if (!e.isNotFound()) {
        throw e;
      }
    }
    b.putManifest(reference, m);
    counts.manifestsPushed++;
    counts.bytesPushed += m.size();
  }

  /**
   * A directory of this run under {@code <work-dir>/tmp}, named after the pid; directories of
   * runs whose process is gone (killed) are removed first.
   */
  private Path privateTempDir() throws IOException {
    Path root = Files.createDirectories(workDir.resolve("tmp"));
    try (Stream<Path> s = Files.list(root)) {
      for (Path p : s.toList()) {
        String name = p.getFileName().toString();
        int dash = name.indexOf('-');
        try {
          long pid = Long.parseLong(dash > 0 ? name.substring(0, dash) : name);
          if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
            continue;
          }
        } catch (NumberFormatException notOurs) {
          continue;
        }
        log.debug("removing {} left by a run that is gone", p);
        deleteTree(p);
      }
    }
    return Files.createDirectory(root.resolve(ProcessHandle.current().pid() + "-"
        + UUID.randomUUID().toString().substring(0, 8)));
  }

  static void deleteTree(Path p) {
    if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      s.sorted(Comparator.reverseOrder()).forEach(f -> {
        try {
          Files.deleteIfExists(f);
        } catch (IOException e) {
          log.warn("could not remove {}: {}", f, e.toString());
        }
      });
    } catch (IOException e) {
      log.warn("could not remove {}: {}", p, e.toString());
    }
  }

  /** Options of a {@link Converter}. */
  public static final class Builder {
    private String source;
    private String destination;
    private String tag;
    private Platform platform;
    private boolean allPlatforms;
    private Path workDir;
    private int chunkSize = Mkfs.DEFAULT_CHUNK_SIZE;
    private boolean tarIndex = true;
    private BackendOptions sourceOptions = BackendOptions.defaults();
    private BackendOptions destinationOptions = BackendOptions.defaults();
    private Listener listener = p -> { };

    private Builder() {}

    /** oci://HOST/REPO[:TAG|@DIGEST], oci+http://..., oci:DIR[:TAG], docker-archive:FILE, a path. */
    public Builder source(String source) {
      this.source = source;
      return this;
    }

    /** oci://HOST/REPO[:TAG], oci+http://..., s3://BUCKET/PREFIX?..., file:///DIR. */
    public Builder destination(String destination) {
      this.destination = destination;
      return this;
    }

    /** The tag (registries without one in the destination) or NAME:TAG (S3, directories). */
    public Builder tag(String tag) {
      this.tag = tag;
      return this;
    }

    /** The platform to convert from an index (default: this machine's). */
    public Builder platform(Platform platform) {
      this.platform = platform;
      return this;
    }

    /** Convert every platform of an index. */
    public Builder allPlatforms(boolean all) {
      this.allPlatforms = all;
      return this;
    }

    /** Where the layer cache and the temporary files live. */
    public Builder workDir(Path dir) {
      this.workDir = dir;
      return this;
    }

    /** Chunk size of chunked layers (a power of two from 4 KiB). */
    public Builder chunkSize(int bytes) {
      Mkfs.builder().chunkSize(bytes); // validates
      this.chunkSize = bytes;
      return this;
    }

    /**
     * Whether uncompressed layers become tar-index images (default), whose data blob is the
     * layer itself, or chunked ones like compressed layers (the kernel's fscache mode needs
     * the 4 KiB blocks of chunked images).
     */
    public Builder tarIndex(boolean tarIndex) {
      this.tarIndex = tarIndex;
      return this;
    }

    public Builder sourceOptions(BackendOptions options) {
      this.sourceOptions = Objects.requireNonNull(options);
      return this;
    }

    public Builder destinationOptions(BackendOptions options) {
      this.destinationOptions = Objects.requireNonNull(options);
      return this;
    }

    public Builder listener(Listener listener) {
      this.listener = Objects.requireNonNull(listener);
      return this;
    }

    public Converter build() {
      return new Converter(this);
    }
  }
}
