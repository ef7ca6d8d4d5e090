package io.lazypull.erofs.oci;

import io.lazypull.backend.Digests;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An image in a registry, {@code oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]} (https;
 * {@code oci+http://} for plain http), taken apart. {@code docker.io/NAME} means
 * {@code docker.io/library/NAME}, as Docker Hub's official images are named.
 *
 * @param scheme oci, oci+http or oci+https
 * @param authority HOST[:PORT], which may carry user:password@
 * @param repository the repository path
 * @param tag the tag, or null
 * @param digest {@code sha256:<hex>}, or null
 */
public record RegistryRef(String scheme, String authority, String repository, String tag, String digest) {
  private static final Pattern REGISTRY =
      Pattern.compile("(oci|oci\\+https?)://([^/]+)/([^:@]+)(?::([^:@/]+))?(?:@(.+))?");
  static final Pattern TAG = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");

  /** Whether {@code spec} is meant as a registry image (its scheme), well-formed or not. */
  public static boolean isRegistry(String spec) {
    String s = spec.toLowerCase(Locale.ROOT);
    return s.startsWith("oci://") || s.startsWith("oci+http://") || s.startsWith("oci+https://");
  }

  /**
   * Parses a registry image reference.
   *
   * @throws IllegalArgumentException for a malformed reference, tag or digest (the message
   *     never shows credentials)
   */
  public static RegistryRef parse(String spec) {
    Matcher m = REGISTRY.matcher(spec);
    if (!m.matches()) {
      throw new IllegalArgumentException("not a registry image reference: '" + spec.replaceAll("//[^/@]*@", "//...@")
          + "' (want oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX])");
    }
    String repo = m.group(3);
    String host = m.group(2).replaceAll(".*@", "").toLowerCase(Locale.ROOT);
    if ((host.equals("docker.io") || host.equals("index.docker.io")) && !repo.contains("/")) {
      repo = "library/" + repo; // Docker Hub's official images
    }
    String tag = m.group(4);
    if (tag != null && !TAG.matcher(tag).matches()) {
      throw new IllegalArgumentException("not a tag: '" + tag + "'");
    }
    String digest = m.group(5);
    if (digest != null) {
      Digests.normalize(digest); // throws for anything but sha256:<hex>
    }
    return new RegistryRef(m.group(1).toLowerCase(Locale.ROOT), m.group(2), repo, tag, digest);
  }

  /** The repository as a backend URI: {@code SCHEME://AUTHORITY/REPO} (credentials kept). */
  public String backendUri() {
    return scheme + "://" + authority + "/" + repository;
  }

  /** HOST[:PORT], without credentials. */
  public String host() {
    return authority.replaceAll(".*@", "");
  }

  /** The reference without credentials. */
  public String display() {
    return scheme + "://" + host() + "/" + repository + (tag != null ? ":" + tag : "")
        + (digest != null ? "@" + digest : "");
  }
}
