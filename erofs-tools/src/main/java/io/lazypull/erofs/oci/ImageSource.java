package io.lazypull.erofs.oci;

import io.lazypull.backend.Manifest;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.function.LongConsumer;

/** Where a source image comes from: a registry, an OCI layout, a docker-archive tar. */
interface ImageSource extends Closeable {
  /** The reference as given, without credentials: what io.lazypull.source.ref records. */
  String describe();

  /** The manifest or index the reference names. */
  Manifest top() throws IOException;

  /** What io.lazypull.source.image records for {@code top}: its digest. */
  default String imageDigest(Manifest top) {
    return top.digest();
  }

  /** A manifest an index references, checked against its descriptor. */
  Manifest manifest(Descriptor d) throws IOException;

  /**
   * Copies a blob into {@code target}, reporting bytes as they arrive; {@code target} exists
   * afterwards only if the bytes matched the descriptor's digest and size.
   */
  void fetch(Descriptor blob, Path target, LongConsumer progress) throws IOException;

  /** The image name a destination without a manifests API files it under, or null. */
  String name();

  /** The source's tag, or null. */
  String tag();
}
