package io.lazypull.cli;

import io.lazypull.erofs.BlobIndex;
import io.lazypull.erofs.ErofsImage;
import io.lazypull.erofs.ImageSource;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * An image opened from the command line: the meta blob plus its --device blobs, closed together.
 * The blobs are read through the meta blob's blob index (erofs-tools' {@link BlobIndex#verifying}):
 * every piece of file data is checked before it is used.
 */
final class ImageArgs implements Closeable {
  final ImageSource meta;
  final List<ImageSource> devices = new ArrayList<>();
  final ErofsImage image;

  ImageArgs(Path imagePath, List<Path> devicePaths) throws IOException {
    meta = ImageSource.of(imagePath);
    try {
      for (Path d : devicePaths) {
        devices.add(ImageSource.of(d));
      }
      image = ErofsImage.open(meta, BlobIndex.verifying(meta, devices));
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
  }

  /** The message for data that is on a device that was not given. */
  String missingDevicesHint() {
    return "file data is on " + image.devices().size() + " extra device(s) (data blobs); pass them with --device";
  }

  @Override
  public void close() throws IOException {
    for (ImageSource d : devices) {
      d.close();
    }
    meta.close();
  }
}
