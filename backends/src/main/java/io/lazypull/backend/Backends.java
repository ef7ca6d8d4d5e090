package io.lazypull.backend;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Opens a {@link BlobBackend} for a URI. The scheme picks the kind:
 *
 * <pre>
 * file:///DIR                         a directory of blobs named by hex digest
 * file:///DIR (with DIR/oci-layout)   an OCI image layout: DIR/blobs/sha256/HEX
 * file:///PATH/layer.tar              one file, the blob named by its own sha256
 * s3://BUCKET[/PREFIX][?endpoint=URL&amp;region=R&amp;path-style=true&amp;anonymous=true]
 * oci://HOST[:PORT]/REPOSITORY        an OCI distribution registry over https
 * oci+http://HOST[:PORT]/REPOSITORY   the same over plain http
 * </pre>
 *
 * Every backend returned shares the same fetch behaviour (retries, timeouts, concurrency bound,
 * counters, verification), configured by {@link BackendOptions}.
 */
public final class Backends {
  private Backends() {}

  /**
   * Opens the backend a URI names.
   *
   * @throws IllegalArgumentException for an unknown scheme or a malformed URI
   * @throws BackendException when a local path does not exist
   */
  public static BlobBackend open(URI uri, BackendOptions options) throws IOException {
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    Store store;
    switch (scheme) {
      case "file":
        if (uri.getPath() == null || uri.getPath().isEmpty()) {
          throw new IllegalArgumentException("file backend URI needs an absolute path: file:///DIR");
        }
        if (uri.getAuthority() != null && !uri.getAuthority().isEmpty()
            && !uri.getAuthority().equals("localhost")) {
          throw new IllegalArgumentException("file backend URI must be local (file:///PATH), got host '"
              + uri.getAuthority() + "'");
        }
        store = LocalStore.open(Path.of(uri.getPath()));
        break;
      case "s3":
        store = new S3Store(uri, options);
        break;
      case "oci":
      case "oci+http":
      case "oci+https":
        store = new RegistryStore(uri, options);
        break;
      default:
        throw new IllegalArgumentException("unsupported backend URI scheme '" + scheme
            + "' (want file, s3, oci or oci+http)");
    }
    return new ManagedBackend(store, options);
  }

  /**
   * Opens the backend named by a URI string or, when the string has no scheme, by a local path
   * (convenient on command lines: {@code ./blobs} means {@code file:///abs/blobs}).
   */
  public static BlobBackend open(String uriOrPath, BackendOptions options) throws IOException {
    if (uriOrPath.matches("^[A-Za-z][A-Za-z0-9+.-]*:.*")) {
      URI uri;
      try {
        uri = new URI(uriOrPath);
      } catch (java.net.URISyntaxException e) {
        throw new IllegalArgumentException("not a valid backend URI: " + e.getMessage()
            .replaceAll("//[^/@]*@", "//...@"));
      }
      return open(uri, options);
    }
    return open(Path.of(uriOrPath).toAbsolutePath().toUri(), options);
  }
}
