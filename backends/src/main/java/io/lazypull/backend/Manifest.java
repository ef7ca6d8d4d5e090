package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Objects;

/**
 * An image manifest or an index: its media type and its exact bytes, named by their sha256
 * (the bytes are never re-serialized: a manifest's digest is the digest of these bytes).
 *
 * <p>Instances made by {@link BlobBackend#manifest} have been checked against the digest the
 * caller asked for (or the registry announced); the bytes are not parsed beyond sniffing a
 * missing media type.
 */
public final class Manifest {
  public static final String OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
  public static final String OCI_INDEX = "application/vnd.oci.image.index.v1+json";
  public static final String DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
  public static final String DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
  /** What lazypull asks registries for, in this order of preference. */
  public static final List<String> ACCEPTED = List.of(OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST);
  /** Larger manifests are refused (containerd's limit too). */
  public static final int MAX_SIZE = 4 << 20;


  private final String mediaType;
  private final byte[] bytes;
  private final String hex;

  /**
   * @param mediaType the media type, as a registry's Content-Type or a descriptor names it
   * @param bytes the exact bytes (copied)
   */
  public Manifest(String mediaType, byte[] bytes) {
    this.mediaType = Objects.requireNonNull(mediaType, "mediaType");
    this.bytes = bytes.clone();
    this.hex = Digests.sha256Hex(ByteBuffer.wrap(this.bytes));
  }

  public String mediaType() {
    return mediaType;
  }

  /** A copy of the bytes. */
  public byte[] bytes() {
    return bytes.clone();
  }

  public int size() {
    return bytes.length;
  }

  /** {@code sha256:<hex>} of the bytes. */
  public String digest() {
    return Digests.SHA256_PREFIX + hex;
  }

  /** Whether the media type is an index or a Docker manifest list. */
  public boolean isIndex() {
    return mediaType.equals(OCI_INDEX) || mediaType.equals(DOCKER_LIST);
  }

  /** The bytes as JSON; a PERMANENT failure naming {@code where} if they are not JSON. */
  public JsonNode json(String where) throws BackendException {
    try {
      JsonNode n = Json.MAPPER.readTree(bytes);
      if (n == null || !n.isObject()) {
        throw new IOException("not a JSON object");
      }
      return n;
    } catch (IOException e) {
      throw new BackendException(BackendException.Kind.PERMANENT, where, "manifest", hex, 0,
          "not a valid manifest: " + e.getMessage().lines().findFirst().orElse(""), null);
    }
  }

  /**
   * The media type a manifest's JSON declares ({@code mediaType}), or, when it declares none (OCI
   * allows that), the one its shape implies: {@code manifests} -> OCI index, {@code config} ->
   * OCI manifest; null if neither.
   */
  static String sniff(JsonNode json) {
    String declared = json.path("mediaType").asText("");
    if (!declared.isEmpty()) {
      return declared;
    }
    if (json.has("manifests")) {
      return OCI_INDEX;
    }
    if (json.has("config")) {
      return OCI_MANIFEST;
    }
    return null;
  }

  @Override
  public String toString() {
    return mediaType + " " + digest() + " (" + bytes.length + " bytes)";
  }
}
