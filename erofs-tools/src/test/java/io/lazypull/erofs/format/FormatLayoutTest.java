package io.lazypull.erofs.format;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Struct sizes and encodings, as erofs_check_ondisk_layout_definitions() checks them. */
class FormatLayoutTest {
  @Test
  void structSizes() {
    assertThat(SuperBlock.SIZE).isEqualTo(128);
    assertThat(InodeCompact.SIZE).isEqualTo(32);
    assertThat(InodeExtended.SIZE).isEqualTo(64);
    assertThat(Dirent.SIZE).isEqualTo(12);
    assertThat(XattrIbodyHeader.SIZE).isEqualTo(12);
    assertThat(XattrEntry.HEAD_SIZE).isEqualTo(4);
    assertThat(ChunkIndex.SIZE).isEqualTo(8);
    assertThat(DeviceSlot.SIZE).isEqualTo(128);
  }

  @Test
  void writeThenRead_roundTripsAndStaysInSize() {
    ByteBuffer b = ByteBuffer.allocate(InodeExtended.SIZE + 8);
    InodeExtended i = new InodeExtended();
    i.format = 9;
    i.size = 5L << 32;
    i.uid = 0xFFFFFFF0L;
    i.mtime = -5;
    i.mtimeNsec = 999_999_999;
    i.nlink = 70000;
    i.write(b);
    assertThat(b.position()).isEqualTo(InodeExtended.SIZE);
    InodeExtended r = InodeExtended.read(b.flip());
    assertThat(r.size).isEqualTo(5L << 32);
    assertThat(r.uid).isEqualTo(0xFFFFFFF0L);
    assertThat(r.mtime).isEqualTo(-5);
    assertThat(r.nlink).isEqualTo(70000);
  }

  @Test
  void rdevEncoding_matchesTheKernels() {
    assertThat(Erofs.encodeRdev(1, 3)).isEqualTo(0x103);
    assertThat(Erofs.encodeRdev(7, 0)).isEqualTo(0x700);
    assertThat(Erofs.encodeRdev(300, 70000)).isEqualTo(0x11112c70);
    assertThat(Erofs.rdevMajor(0x11112c70)).isEqualTo(300);
    assertThat(Erofs.rdevMinor(0x11112c70)).isEqualTo(70000);
  }

  @Test
  void xattrIcount_sizes() {
    assertThat(XattrIbodyHeader.ibodySize(0)).isZero();
    assertThat(XattrIbodyHeader.icount(32)).isEqualTo(6); // trusted.overlay.opaque=y, spec §6.2
    assertThat(XattrIbodyHeader.icount(48)).isEqualTo(10); // security.capability
  }
}
