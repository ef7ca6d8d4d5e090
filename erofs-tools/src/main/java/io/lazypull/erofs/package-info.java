/**
 * EROFS images for lazypull: a writer and a reader of the uncompressed on-disk format.
 *
 * <p>Entry points: {@link io.lazypull.erofs.Mkfs} (build an image from a directory or a tar,
 * in a {@link io.lazypull.erofs.Layout}), {@link io.lazypull.erofs.ErofsImage} (read one from
 * {@link io.lazypull.erofs.ImageSource}s), {@link io.lazypull.erofs.BlobIndex} (the per-piece
 * digests of data blobs appended to meta blobs). Malformed images raise
 * {@link io.lazypull.erofs.CorruptImageException}. Everything else in this package is
 * package-private; the on-disk structs are in {@link io.lazypull.erofs.format}.
 */
package io.lazypull.erofs;
