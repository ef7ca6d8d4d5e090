package io.lazypull.daemon;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.backend.BackendOptions;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class DaemonConfigTest {
  @Test
  void fitBackend_defaults_attemptsOfHalfTheReadTimeout_operationsCutAtIt() {
    BackendOptions o = DaemonConfig.defaults().fitBackend(BackendOptions.defaults());
    assertThat(DaemonConfig.defaults().readTimeout()).isEqualTo(Duration.ofSeconds(20));
    assertThat(o.readTimeout()).isEqualTo(Duration.ofSeconds(10));
    assertThat(o.connectTimeout()).isEqualTo(Duration.ofSeconds(10));
    assertThat(o.operationTimeout()).isEqualTo(Duration.ofSeconds(20));
    assertThat(o.maxRetries()).isEqualTo(BackendOptions.defaults().maxRetries());
  }

  @Test
  void fitBackend_keepsShorterTimeoutsOfItsOwn() {
    BackendOptions base = BackendOptions.builder().readTimeout(Duration.ofSeconds(1))
        .connectTimeout(Duration.ofMillis(500)).operationTimeout(Duration.ofSeconds(3)).build();
    BackendOptions o = DaemonConfig.defaults().withReadTimeout(Duration.ofSeconds(4)).fitBackend(base);
    assertThat(o.readTimeout()).isEqualTo(Duration.ofSeconds(1));
    assertThat(o.connectTimeout()).isEqualTo(Duration.ofMillis(500));
    assertThat(o.operationTimeout()).isEqualTo(Duration.ofSeconds(3));
  }

  @Test
  void readTimeout_mustBePositive() {
    assertThatThrownBy(() -> DaemonConfig.defaults().withReadTimeout(Duration.ZERO))
        .hasMessageContaining("read timeout");
  }
}
