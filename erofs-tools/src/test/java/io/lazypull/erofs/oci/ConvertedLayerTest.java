package io.lazypull.erofs.oci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.erofs.Layout;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ConvertedLayerTest {
  static final String FSID = "1a".repeat(32);
  static final String DATA = "sha256:" + "2b".repeat(32);

  static ConvertedLayer layer() {
    return new ConvertedLayer(FSID, 8192, Layout.CHUNKED, List.of(new ConvertedLayer.Blob(DATA, 4096)),
        "sha256:" + "3c".repeat(32), "sha256:" + "4d".repeat(32), ImageFormat.OCI_LAYER_GZIP, 1234);
  }

  @Test
  void descriptor_carriesTheFormatsAnnotations_andReadsBack() throws Exception {
    Descriptor d = layer().descriptor();
    assertThat(d.mediaType()).isEqualTo(ImageFormat.META_MEDIA_TYPE);
    assertThat(d.digest()).isEqualTo("sha256:" + FSID);
    assertThat(d.annotations()).containsEntry("io.lazypull.fsid", FSID)
        .containsEntry("io.lazypull.layout", "chunked")
        .containsEntry("io.lazypull.data-blobs", DATA)
        .containsEntry("io.lazypull.source.diffid", "sha256:" + "4d".repeat(32))
        .containsEntry("containerd.io/snapshot/lazypull.fsid", FSID)
        .containsEntry("containerd.io/snapshot/lazypull.data-blobs", DATA);
    ConvertedLayer back = ConvertedLayer.fromDescriptor(d);
    assertThat(back.fsid()).isEqualTo(FSID);
    assertThat(back.layout()).isEqualTo(Layout.CHUNKED);
    assertThat(back.dataBlobs()).containsExactly(new ConvertedLayer.Blob(DATA, -1));
    assertThat(back.sourceSize()).isEqualTo(1234);
  }

  @Test
  void fromDescriptor_refusesWhatIsNotAConvertedLayer() {
    Descriptor d = layer().descriptor();
    assertThatThrownBy(() -> ConvertedLayer.fromDescriptor(new Descriptor(ImageFormat.OCI_LAYER_GZIP,
        d.digest(), d.size(), d.annotations(), null, null))).hasMessageContaining("not a converted layer");
    Map<String, String> wrongFsid = new LinkedHashMap<>(d.annotations());
    wrongFsid.put(ImageFormat.FSID, "5e".repeat(32));
    assertThatThrownBy(() -> ConvertedLayer.fromDescriptor(new Descriptor(d.mediaType(), d.digest(),
        d.size(), wrongFsid, null, null))).hasMessageContaining("is not the meta blob's digest");
    Map<String, String> noBlobs = new LinkedHashMap<>(d.annotations());
    noBlobs.remove(ImageFormat.DATA_BLOBS);
    assertThatThrownBy(() -> ConvertedLayer.fromDescriptor(new Descriptor(d.mediaType(), d.digest(),
        d.size(), noBlobs, null, null))).hasMessageContaining("has no io.lazypull.data-blobs");
  }
}
