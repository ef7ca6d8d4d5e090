package io.lazypull.erofs.oci;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/*
 * The image references convert takes:
 *
 *   source       oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]   a registry (https; oci+http:// plain)
 *                oci:DIR[:TAG]  or  DIR with an oci-layout   an OCI image layout
 *                docker-archive:FILE[:NAME:TAG]  or  FILE    a `docker save` tar
 *   destination  oci://HOST[:PORT]/REPO[:TAG]                a registry
 *                s3://BUCKET[/PREFIX][?...], file:///DIR     blobs + refs/NAME:TAG (--tag NAME:TAG)
 */
final class ImageRefs {
  private static final ObjectMapper JSON = new ObjectMapper();

  private ImageRefs() {}

  /**
   * Opens a source image.
   *
   * @throws IllegalArgumentException for a reference that names nothing lazypull can read
   */
  static ImageSource openSource(String spec, BackendOptions options) throws IOException {
    if (RegistryRef.isRegistry(spec)) {
      RegistryRef r = RegistryRef.parse(spec);
      String reference = r.digest() != null ? r.digest() : r.tag() != null ? r.tag() : "latest";
      BlobBackend b = Backends.open(r.backendUri(), options);
      return new BackendSource(b, reference, r.display(), r.repository(), r.tag() != null ? r.tag()
          : r.digest() == null ? "latest" : null);
    }
    if (spec.startsWith("oci:")) {
      String rest = spec.substring(4);
      Path dir = Path.of(rest);
      String tag = null;
      int colon = rest.lastIndexOf(':');
      if (!Files.isDirectory(dir) && colon > 0) {
        dir = Path.of(rest.substring(0, colon));
        tag = rest.substring(colon + 1);
      }
      return openLayout(dir, tag, spec, options);
    }
    if (spec.startsWith("docker-archive:")) {
      String rest = spec.substring("docker-archive:".length());
      Path file = Path.of(rest);
      String ref = null;
      int colon = rest.indexOf(':');
      if (!Files.isRegularFile(file) && colon > 0) {
        file = Path.of(rest.substring(0, colon));
        ref = rest.substring(colon + 1);
      }
      return DockerArchiveSource.open(file, ref, spec);
    }
    if (spec.matches("^[A-Za-z][A-Za-z0-9+.-]*://.*")) {
      throw new IllegalArgumentException("unsupported source '" + spec.replaceAll("//[^/@]*@", "//...@")
          + "' (want oci://, oci+http://, oci:DIR[:TAG], docker-archive:FILE, or a path)");
    }
    Path p = Path.of(spec);
    if (Files.isDirectory(p)) {
      if (!Files.isRegularFile(p.resolve("oci-layout"))) {
        throw new IllegalArgumentException(spec + " is a directory without an oci-layout file: not an OCI image layout");
      }
      return openLayout(p, null, spec, options);
    }
    if (Files.isRegularFile(p)) {
      if (!DockerArchiveSource.looksLikeOne(p)) {
        throw new IllegalArgumentException(spec + " is not a docker-archive (a tar with manifest.json)");
      }
      return DockerArchiveSource.open(p, null, spec);
    }
    throw new IllegalArgumentException("no such image, directory or file: " + spec);
  }

  /** An OCI layout; without a tag it must hold exactly one manifest (or index). */
  private static ImageSource openLayout(Path dir, String tag, String spec, BackendOptions options)
      throws IOException {
    if (!Files.isRegularFile(dir.resolve("oci-layout"))) {
      throw new IllegalArgumentException(dir + " is not an OCI image layout (no oci-layout file)");
    }
    String reference = tag;
    String refName = tag;
    if (tag == null) {
      JsonNode index;
      try {
        index = JSON.readTree(dir.resolve("index.json").toFile());
      } catch (IOException e) {
        throw new BadManifestException(dir.resolve("index.json") + ": " + e.getMessage().lines().findFirst().orElse(""));
      }
      JsonNode entries = index.path("manifests");
      if (entries.size() != 1) {
        List<String> names = new ArrayList<>();
        entries.forEach(e -> names.add(e.path("annotations").path("org.opencontainers.image.ref.name").asText("?")));
        throw new IllegalArgumentException(dir + " holds " + entries.size()
            + " images: name one with oci:" + dir + ":TAG (" + String.join(", ", names) + ")");
      }
      reference = Descriptor.parse(entries.get(0), "index.json manifests[0]").digest();
      refName = entries.get(0).path("annotations").path("org.opencontainers.image.ref.name").asText(null);
    }
    // A ref name may be a whole reference (docker.io/library/busybox:1.36, as containerd
    // exports write): then it gives the name and tag too.
    String name = null;
    String sourceTag = refName;
    if (refName != null && refName.contains("/") && refName.lastIndexOf(':') > refName.lastIndexOf('/')) {
      name = refName.substring(0, refName.lastIndexOf(':')).replaceFirst("^docker\\.io/", "");
      sourceTag = refName.substring(refName.lastIndexOf(':') + 1);
    }
    BlobBackend b = Backends.open(dir.toAbsolutePath().toUri(), options);
    return new BackendSource(b, reference, spec, name, sourceTag != null && RegistryRef.TAG.matcher(sourceTag).matches() ? sourceTag : null);
  }

  /** Where converted images go, and the reference the index is put under. */
  record Destination(BlobBackend backend, String reference, String display) implements AutoCloseable {
    @Override
    public void close() throws IOException {
      backend.close();
    }
  }

  /**
   * Opens a destination. Registries: the tag is DEST's, else {@code tagOption}, else the
   * source's, else latest. Others: {@code tagOption} (NAME:TAG), else the source's name and tag.
   */
  static Destination openDestination(String spec, String tagOption, ImageSource source,
      BackendOptions options) throws IOException {
    if (RegistryRef.isRegistry(spec)) {
      RegistryRef r = RegistryRef.parse(spec);
      if (r.digest() != null) {
        throw new IllegalArgumentException("a destination takes a tag, not a digest: " + r.display());
      }
      if (r.tag() != null && tagOption != null) {
        throw new IllegalArgumentException("the destination has a tag already; --tag is for destinations without one");
      }
      String tag = r.tag() != null ? r.tag() : tagOption != null ? tagOption
          : source.tag() != null ? source.tag() : "latest";
      if (!RegistryRef.TAG.matcher(tag).matches()) {
        throw new IllegalArgumentException("not a tag: '" + tag + "' (a registry destination's --tag is just the tag)");
      }
      BlobBackend b = Backends.open(r.backendUri(), options);
      return new Destination(b, tag,
          new RegistryRef(r.scheme(), r.authority(), r.repository(), tag, null).display());
    }
    Path local = spec.startsWith("file:") ? Path.of(java.net.URI.create(spec).getPath())
        : spec.matches("^[A-Za-z][A-Za-z0-9+.-]*:.*") ? null : Path.of(spec);
    if (local != null && Files.isRegularFile(local.resolve("oci-layout"))) {
      throw new IllegalArgumentException(spec + " is an OCI layout: convert writes into registries, "
          + "S3 and plain blob directories, not into layouts");
    }
    String ref = tagOption;
    if (ref == null) {
      if (source.name() == null) {
        throw new IllegalArgumentException("name the image in " + spec.replaceAll("\\?.*", "")
            + " with --tag NAME:TAG (the source has no name)");
      }
      ref = source.name() + ":" + (source.tag() != null ? source.tag() : "latest");
    }
    BlobBackend b = Backends.open(spec, options);
    return new Destination(b, ref, b.describe() + " " + ref);
  }
}
