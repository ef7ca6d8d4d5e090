package io.lazypull.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.testing.Requirements;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MountsTest {
  @TempDir Path tmp;

  @Test
  void mountErofs_fileBacked_readsFileAndShowsInMountinfo() throws Exception {
    Requirements.assumeRoot();
    Requirements.assumeCommand("mkfs.erofs");
    Path src = Files.createDirectories(tmp.resolve("src"));
    Files.writeString(src.resolve("hello.txt"), "hello erofs\n");
    Path img = tmp.resolve("a.img");
    Process p = new ProcessBuilder("mkfs.erofs", "--quiet", img.toString(), src.toString())
        .redirectErrorStream(true).start();
    assertThat(p.waitFor()).as(new String(p.getInputStream().readAllBytes())).isZero();
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));

    Mounts.mountErofs(img, mnt, List.of());
    try {
      assertThat(Files.readString(mnt.resolve("hello.txt"))).isEqualTo("hello erofs\n");
      Mounts.MountInfo mi = Mounts.mountInfo(mnt);
      assertThat(mi).isNotNull();
      assertThat(mi.fsType()).isEqualTo("erofs");
      assertThat(mi.source()).isEqualTo(img.toAbsolutePath().toString()); // file-backed, no loop
    } finally {
      Mounts.umount(mnt, 0);
    }
    assertThat(Mounts.isMountPoint(mnt)).isFalse();
  }

  @Test
  void mount_garbage_throwsErrnoNamingTheCall() throws Exception {
    Requirements.assumeRoot();
    Path img = tmp.resolve("garbage.img");
    Files.write(img, new byte[8192]);
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));
    assertThatThrownBy(() -> Mounts.mountErofs(img, mnt, List.of()))
        .isInstanceOf(ErrnoException.class)
        .hasMessageContaining("mount(erofs")
        .hasMessageContaining("EINVAL");
  }

  @Test
  void seekDataAndHole_sparseFile() throws Exception {
    Path f = tmp.resolve("sparse");
    int fd = Posix.open(f.toString(), Posix.O_RDWR | Posix.O_CREAT, 0644);
    try {
      Posix.ftruncate(fd, 1 << 20);
      Posix.pwriteFully(fd, java.nio.ByteBuffer.wrap(new byte[4096]), 65536);
      assertThat(Posix.seekData(fd, 0)).isEqualTo(65536);
      assertThat(Posix.seekHole(fd, 65536)).isEqualTo(65536 + 4096);
      assertThat(Posix.seekData(fd, 65536 + 4096)).isEqualTo(-1);
    } finally {
      Posix.close(fd);
    }
  }
}
