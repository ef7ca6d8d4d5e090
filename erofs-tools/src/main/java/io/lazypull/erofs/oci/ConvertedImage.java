package io.lazypull.erofs.oci;

import io.lazypull.backend.BackendException;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Manifest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A converted image as its readers ('lazypull pull', a snapshotter) see it
 * (docs/containers.md, "Format"): the index, the image manifest for one platform and its
 * config, each with its exact bytes (what a content store takes), and the converted layers,
 * each checked against the config's diff IDs. Read one with {@link #read}.
 */
public final class ConvertedImage {
  private final Manifest index;
  private final Manifest manifest;
  private final Descriptor config;
  private final byte[] configBytes;
  private final List<String> diffIds;
  private final List<ConvertedLayer> layers;

  private ConvertedImage(Manifest index, Manifest manifest, Descriptor config, byte[] configBytes,
      List<String> diffIds, List<ConvertedLayer> layers) {
    this.index = index;
    this.manifest = manifest;
    this.config = config;
    this.configBytes = configBytes;
    this.diffIds = List.copyOf(diffIds);
    this.layers = List.copyOf(layers);
  }

  /**
   * Reads the converted image {@code reference} (a tag, {@code NAME:TAG} or a digest, as
   * {@link BlobBackend#manifest} takes it) for {@code platform}: index, manifest and config,
   * each checked against the descriptor that names it. No layer blob is fetched.
   *
   * @param what the image as the user named it, for messages
   * @throws BadManifestException for an image that is not a lazypull image, has no manifest for
   *     {@code platform}, or whose parts do not agree (the message says which and how)
   * @throws BackendException when reading fails (a missing image or blob, bytes that do not
   *     match their digest)
   */
  public static ConvertedImage read(BlobBackend backend, String reference, Platform platform, String what)
      throws IOException {
    Objects.requireNonNull(what, "what");
    Manifest index = backend.manifest(reference);
    if (!index.mediaType().equals(Manifest.OCI_INDEX)) {
      throw new BadManifestException(what + " is not a lazypull image: its top manifest is " + index.mediaType()
          + ", not an OCI index (convert it with 'lazypull convert')");
    }
    ImageIndex idx = ImageIndex.parse(index);
    Descriptor entry = idx.image(platform).orElse(null);
    if (entry == null) {
      List<String> seen = idx.images().stream().map(d -> String.valueOf(d.platform())).toList();
      throw new BadManifestException(what + " has no manifest for " + platform + " (it has: "
          + (seen.isEmpty() ? "none" : String.join(", ", seen)) + ")");
    }
    Manifest manifest = backend.manifest(entry.digest());
    if (manifest.size() != entry.size()) {
      throw new BadManifestException("manifest " + entry.digest() + " has " + manifest.size()
          + " bytes, the index says " + entry.size());
    }
    ImageManifest m = ImageManifest.parse(manifest);
    byte[] configBytes = fetchSmall(backend, m.config());
    List<String> diffIds = ImageConfig.parse(configBytes, m.config().digest()).diffIds();
    if (m.layers().isEmpty() || m.layers().size() != diffIds.size()) {
      throw new BadManifestException(what + ": " + m.layers().size() + " layers but " + diffIds.size()
          + " diff IDs in the config");
    }
    List<ConvertedLayer> layers = new ArrayList<>();
    for (int i = 0; i < m.layers().size(); i++) {
      layers.add(layer(m.layers().get(i), i, diffIds.get(i), what));
    }
    return new ConvertedImage(index, manifest, m.config(), configBytes, diffIds, layers);
  }

  /** Layer {@code i} as converted: a meta blob named by its fsid, from the layer with {@code diffId}. */
  private static ConvertedLayer layer(Descriptor d, int i, String diffId, String what)
      throws BadManifestException {
    if (!d.mediaType().equals(ImageFormat.META_MEDIA_TYPE)) {
      throw new BadManifestException(what + ": layer " + i + " is " + d.mediaType() + ", not a lazypull layer ("
          + ImageFormat.META_MEDIA_TYPE + "): convert the image with 'lazypull convert'");
    }
    String fsid = d.annotations().getOrDefault(ImageFormat.FSID, "");
    if (!fsid.equals(d.hex())) {
      throw new BadManifestException(what + ": layer " + i + " has fsid '" + fsid + "' but digest " + d.digest());
    }
    ConvertedLayer layer;
    try {
      layer = ConvertedLayer.fromDescriptor(d);
    } catch (BadManifestException e) {
      throw new BadManifestException(what + ": " + e.getMessage());
    }
    if (layer.sourceDiffId() != null && !layer.sourceDiffId().equals(diffId)) {
      throw new BadManifestException(what + ": layer " + i + " was converted from " + layer.sourceDiffId()
          + " but the config's diff ID is " + diffId);
    }
    return layer;
  }

  /** A config: at most {@link Manifest#MAX_SIZE} bytes, checked against its digest and size. */
  private static byte[] fetchSmall(BlobBackend backend, Descriptor d) throws IOException {
    if (d.size() > Manifest.MAX_SIZE) {
      throw new BadManifestException("config " + d.digest() + " is " + d.size() + " bytes; more than "
          + Manifest.MAX_SIZE + " is not a config");
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream((int) d.size());
    backend.transferTo(d.digest(), Channels.newChannel(out)); // throws when the bytes do not match the digest
    if (out.size() != d.size()) {
      throw new BadManifestException("config " + d.digest() + " from " + backend.describe() + " has " + out.size()
          + " bytes, the manifest says " + d.size());
    }
    return out.toByteArray();
  }

  /** The index, exact bytes: what the image's tag names. */
  public Manifest index() {
    return index;
  }

  /** The image manifest for the platform read, exact bytes. */
  public Manifest manifest() {
    return manifest;
  }

  /** The config's descriptor (the source image's config, unchanged). */
  public Descriptor config() {
    return config;
  }

  /** The config's bytes (a copy). */
  public byte[] configBytes() {
    return configBytes.clone();
  }

  /** The config's {@code rootfs.diff_ids}: the source layers' uncompressed digests, lowest first. */
  public List<String> diffIds() {
    return diffIds;
  }

  /** The converted layers, lowest first: {@code layers().get(i)} is the layer of {@code diffIds().get(i)}. */
  public List<ConvertedLayer> layers() {
    return layers;
  }
}
