package io.lazypull.sys;

import static org.assertj.core.api.Assertions.assertThat;

import io.lazypull.testing.Requirements;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Device paths with a comma (the shim's cache files live in "erofs,&lt;domain&gt;" directories):
 * mount(2)'s option string would split them, so Mounts goes through fsconfig(2).
 */
class MountsCommaPathTest {
  @TempDir Path tmp;

  @Test
  void mountErofs_devicePathWithAComma_mountsThroughFsconfig() throws Exception {
    Requirements.assumeRoot();
    Requirements.assumeCommand("mkfs.erofs");
    Path src = Files.createDirectories(tmp.resolve("src"));
    Files.writeString(src.resolve("hello.txt"), "hello from a chunked blob\n".repeat(500));
    Path dir = Files.createDirectories(tmp.resolve("erofs,domain"));
    Path meta = dir.resolve("meta");
    Path blob = dir.resolve("blob");
    Process p = new ProcessBuilder("mkfs.erofs", "--quiet", "--chunksize=4096", "--blobdev=" + blob, meta.toString(),
        src.toString()).redirectErrorStream(true).start();
    assertThat(p.waitFor()).as(new String(p.getInputStream().readAllBytes())).isZero();
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));

    Mounts.mountErofs(meta, mnt, List.of(blob));
    try {
      assertThat(Files.readString(mnt.resolve("hello.txt"))).isEqualTo("hello from a chunked blob\n".repeat(500));
      Mounts.MountInfo mi = Mounts.mountInfo(mnt);
      assertThat(mi.fsType()).isEqualTo("erofs");
      assertThat(mi.source()).isEqualTo(meta.toAbsolutePath().toString());
      assertThat(mi.superOptions()).startsWith("ro");
    } finally {
      Mounts.umount(mnt, 0);
    }
  }
}
