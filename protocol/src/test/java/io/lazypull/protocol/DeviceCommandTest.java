package io.lazypull.protocol;

import static java.nio.charset.StandardCharsets.ISO_8859_1;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class DeviceCommandTest {
  private static DeviceCommand parse(String s) throws DeviceCommand.Rejected {
    return DeviceCommand.parse(s.getBytes(ISO_8859_1));
  }

  private static int errnoOf(String s) {
    try {
      parse(s);
      throw new AssertionError("accepted: " + s);
    } catch (DeviceCommand.Rejected r) {
      return r.errno();
    }
  }

  @Test
  void parse_commandsAnOndemandDaemonWrites() throws Exception {
    assertThat(parse("copen 7,1048576")).isEqualTo(new DeviceCommand.Copen(7, 1048576));
    assertThat(parse("copen 7,-2\n")).isEqualTo(new DeviceCommand.Copen(7, -2));
    assertThat(parse("copen 0x10,0x1000")).isEqualTo(new DeviceCommand.Copen(16, 4096));
    assertThat(parse("copen 4294967295,0")).isEqualTo(new DeviceCommand.Copen(-1, 0));
    assertThat(parse("restore")).isEqualTo(DeviceCommand.Restore.INSTANCE);
    assertThat(parse("bind ondemand")).isEqualTo(DeviceCommand.Bind.ONDEMAND);
    assertThat(parse("dir   /var/cache/fscache\nignored")).isEqualTo(new DeviceCommand.Dir("/var/cache/fscache"));
  }

  @Test
  void text_isWhatParseAccepts() throws Exception {
    DeviceCommand[] all = {
      new DeviceCommand.Copen(-5, 123), DeviceCommand.Copen.error(3, 2), DeviceCommand.Restore.INSTANCE,
      DeviceCommand.Bind.ONDEMAND, new DeviceCommand.Tag("lazypull"), new DeviceCommand.Dir("/c"),
    };
    for (DeviceCommand c : all) {
      assertThat(parse(c.text())).isEqualTo(c);
    }
    assertThat(DeviceCommand.Copen.error(3, 2).text()).isEqualTo("copen 3,-2");
  }

  @Test
  void parse_rejectsLikeTheKernel() {
    assertThat(errnoOf("frobnicate")).isEqualTo(DeviceCommand.EOPNOTSUPP);
    assertThat(errnoOf("\nrestore")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("rest\0ore")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("x".repeat(4096))).isEqualTo(DeviceCommand.EOPNOTSUPP);
    assertThat(errnoOf("copen 7")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("copen ,5")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("copen 7,abc")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("copen 7,-4096")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("bind sideways")).isEqualTo(DeviceCommand.EINVAL);
    assertThat(errnoOf("dir")).isEqualTo(DeviceCommand.EINVAL);
  }
}
