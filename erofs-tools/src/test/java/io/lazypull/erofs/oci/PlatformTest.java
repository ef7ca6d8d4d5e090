package io.lazypull.erofs.oci;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class PlatformTest {
  @Test
  void parse_normalizesArchitectures() {
    assertThat(Platform.parse("linux/amd64")).isEqualTo(new Platform("linux", "amd64", "", ""));
    assertThat(Platform.parse("linux/x86_64")).isEqualTo(new Platform("linux", "amd64", "", ""));
    assertThat(Platform.parse("Linux/aarch64/v8")).isEqualTo(new Platform("linux", "arm64", "v8", ""));
  }

  @Test
  void parse_refusesWhatIsNotOsSlashArch() {
    for (String bad : new String[] {"linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/arm/"}) {
      assertThatThrownBy(() -> Platform.parse(bad)).isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("OS/ARCH");
    }
  }

  @Test
  void accepts_osAndArch_andTheVariantWhenAsked() {
    Platform amd64 = Platform.parse("linux/amd64");
    assertThat(amd64.accepts(new Platform("linux", "amd64", "", ""))).isTrue();
    assertThat(amd64.accepts(new Platform("linux", "arm64", "", ""))).isFalse();
    assertThat(amd64.accepts(new Platform("windows", "amd64", "", "10.0"))).isFalse();
    Platform v8 = Platform.parse("linux/arm64/v8");
    assertThat(v8.accepts(new Platform("linux", "arm64", "", ""))).as("v8 is arm64's default").isTrue();
    assertThat(v8.accepts(new Platform("linux", "arm64", "v8", ""))).isTrue();
    Platform v7 = Platform.parse("linux/arm/v7");
    assertThat(v7.accepts(new Platform("linux", "arm", "v6", ""))).isFalse();
    assertThat(Platform.parse("linux/arm").accepts(new Platform("linux", "arm", "v6", ""))).isTrue();
  }

  @Test
  void unknownUnknown_isNeverAnImage() {
    assertThat(new Platform("unknown", "unknown", "", "").isUnknown()).isTrue();
    assertThat(Platform.host().isUnknown()).isFalse();
    assertThat(Platform.host().os()).isEqualTo("linux");
  }
}
