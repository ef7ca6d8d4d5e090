package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Locale;

/**
 * An image platform as OCI indexes and image configs name it: os, architecture, and the
 * optional variant and os.version. Architectures are kept in Go's spelling (amd64, arm64).
 */
public record Platform(String os, String architecture, String variant, String osVersion) {
  public Platform {
    os = os == null ? "" : os;
    architecture = architecture == null ? "" : architecture;
    variant = variant == null ? "" : variant;
    osVersion = osVersion == null ? "" : osVersion;
  }

  /** Parses {@code os/arch[/variant]}, e.g. linux/amd64, linux/arm64/v8. */
  public static Platform parse(String s) {
    String[] p = s.trim().toLowerCase(Locale.ROOT).split("/", -1);
    if (p.length < 2 || p.length > 3 || p[0].isEmpty() || p[1].isEmpty()
        || (p.length == 3 && p[2].isEmpty())) {
      throw new IllegalArgumentException("not a platform: '" + s + "' (want OS/ARCH[/VARIANT], e.g. linux/amd64)");
    }
    return new Platform(p[0], normalizeArch(p[1]), p.length == 3 ? p[2] : "", "");
  }

  /** This machine: linux and the JVM's architecture in Go's spelling. */
  public static Platform host() {
    String arch = normalizeArch(System.getProperty("os.arch", ""));
    return new Platform("linux", arch, arch.equals("arm64") ? "v8" : "", "");
  }

  static String normalizeArch(String arch) {
    switch (arch.toLowerCase(Locale.ROOT)) {
      case "x86_64": case "x86-64": case "amd64": return "amd64";
      case "aarch64": case "arm64": return "arm64";
      case "i386": case "i686": case "x86": return "386";
      default: return arch.toLowerCase(Locale.ROOT);
    }
  }

  /** The platform of an index entry or an image config (null or missing fields: empty). */
  static Platform fromJson(JsonNode n) {
    return new Platform(n.path("os").asText(""), n.path("architecture").asText(""),
        n.path("variant").asText(""), n.path("os.version").asText(""));
  }

  ObjectNode toJson() {
    ObjectNode n = JsonNodeFactory.instance.objectNode();
    n.put("architecture", architecture);
    n.put("os", os);
    if (!osVersion.isEmpty()) {
      n.put("os.version", osVersion);
    }
    if (!variant.isEmpty()) {
      n.put("variant", variant);
    }
    return n;
  }

  /**
   * Whether an image of {@code candidate} runs here when {@code this} is asked for: same os
   * and architecture; the variant must match when one is asked (arm64's v8 is the default).
   */
  public boolean accepts(Platform candidate) {
    if (!os.equals(candidate.os) || !architecture.equals(normalizeArch(candidate.architecture))) {
      return false;
    }
    if (variant.isEmpty()) {
      return true;
    }
    String v = candidate.variant.isEmpty() && architecture.equals("arm64") ? "v8" : candidate.variant;
    return variant.equals(v);
  }

  /** True for unknown/unknown: attestation and blobs manifests, never an image to run. */
  boolean isUnknown() {
    return os.equals(ImageFormat.UNKNOWN) && architecture.equals(ImageFormat.UNKNOWN);
  }

  @Override
  public String toString() {
    return os + "/" + architecture + (variant.isEmpty() ? "" : "/" + variant);
  }
}
