package io.lazypull.daemon;

import io.lazypull.protocol.CacheFiles;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Maps the keys of an OPEN to a blob: the volume key {@code erofs,<domain>} picks the backend
 * (a named domain, else the default), the cookie key is the blob's sha256 hex digest (the
 * image's fsid for the meta blob, a device-table tag for a data blob).
 */
public final class Domains {
  private static final Pattern DIGEST = Pattern.compile("[0-9a-f]{64}");

  private final BlobSource defaultSource;
  private final Map<String, BlobSource> named;

  /** @param defaultSource for every domain not named; null: only named domains are served */
  public Domains(BlobSource defaultSource, Map<String, BlobSource> named) {
    this.defaultSource = defaultSource;
    this.named = Map.copyOf(new LinkedHashMap<>(named));
    if (defaultSource == null && named.isEmpty()) {
      throw new IllegalArgumentException("no backend: give a default backend or at least one domain");
    }
  }

  /** A blob an OPEN refers to. */
  public record BlobRef(String domain, String digest, BlobSource source) {
    @Override
    public String toString() {
      return domain + "/" + digest;
    }
  }

  /** Thrown for keys that name no blob we serve; the OPEN is answered with ENOENT. */
  public static final class UnknownBlobException extends java.io.IOException {
    private static final long serialVersionUID = 1L;

    UnknownBlobException(String message) {
      super(message);
    }
  }

  /** The descriptions of every backend: the default one and the domains'. */
  java.util.Set<String> describeSources() {
    java.util.Set<String> out = new java.util.TreeSet<>();
    if (defaultSource != null) {
      out.add(defaultSource.describe());
    }
    named.values().forEach(b -> out.add(b.describe()));
    return out;
  }

  public BlobRef resolve(String volumeKey, String cookieKey) throws UnknownBlobException {
    String domain = CacheFiles.erofsDomain(volumeKey);
    if (domain == null) {
      throw new UnknownBlobException("volume " + io.lazypull.protocol.MessageCodec.printable(volumeKey)
          + " is not an EROFS volume");
    }
    String digest = cookieKey.startsWith("sha256:") ? cookieKey.substring(7) : cookieKey;
    if (!DIGEST.matcher(digest).matches()) {
      throw new UnknownBlobException("cookie " + io.lazypull.protocol.MessageCodec.printable(cookieKey)
          + " in domain " + domain + " is not a sha256 hex digest");
    }
    BlobSource source = named.getOrDefault(domain, defaultSource);
    if (source == null) {
      throw new UnknownBlobException("domain " + domain + " has no backend (known: " + named.keySet() + ")");
    }
    return new BlobRef(domain, digest, source);
  }
}
