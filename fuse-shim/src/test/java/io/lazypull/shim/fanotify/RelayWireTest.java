package io.lazypull.shim.fanotify;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.protocol.ProtocolException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class RelayWireTest {
  @Test
  void open_roundTrips_withUtf8NamesAndTheWholeFlag() throws Exception {
    RelayWire.Open o = new RelayWire.Open(7, true, "dom\u00e4in", "sha256:ab");
    ByteBuffer b = o.encode();
    assertThat(b.order(ByteOrder.nativeOrder()).getInt(0)).isEqualTo(7);
    assertThat(b.get(4)).isEqualTo(RelayWire.KIND_OPEN);
    assertThat(b.get(5)).isEqualTo((byte) RelayWire.FLAG_WHOLE);
    assertThat(RelayWire.decodeRequest(b)).isEqualTo(o);
    RelayWire.Open notWhole = new RelayWire.Open(8, false, "", "blob");
    assertThat(RelayWire.decodeRequest(notWhole.encode())).isEqualTo(notWhole);
  }

  @Test
  void mounted_roundTrips() throws Exception {
    RelayWire.Mounted m = new RelayWire.Mounted(9, "/mnt/an image");
    assertThat(RelayWire.decodeRequest(m.encode())).isEqualTo(m);
  }

  @Test
  void replies_roundTrip_errorsCarryNoPayload() throws Exception {
    RelayWire.Reply ok = new RelayWire.Reply(3, 0, 192131072, false, "/c/erofs,d/blob");
    assertThat(RelayWire.Reply.decode(ok.encode())).isEqualTo(ok);
    RelayWire.Reply err = RelayWire.Reply.error(4, -2);
    assertThat(err.encode().remaining()).isEqualTo(8);
    assertThat(RelayWire.Reply.decode(err.encode())).isEqualTo(err);
  }

  @Test
  void malformedRequests_areProtocolErrors() {
    assertThatThrownBy(() -> RelayWire.decodeRequest(ByteBuffer.allocate(3))).isInstanceOf(ProtocolException.class);
    ByteBuffer unknown = ByteBuffer.allocate(5).order(ByteOrder.nativeOrder()).putInt(1).put((byte) 9).flip();
    assertThatThrownBy(() -> RelayWire.decodeRequest(unknown)).hasMessageContaining("unknown kind 9");
    ByteBuffer badLength = ByteBuffer.allocate(10).order(ByteOrder.nativeOrder()).putInt(1).put(RelayWire.KIND_OPEN)
        .put((byte) 0).putShort((short) 100).put((byte) 'x').put((byte) 'y').flip();
    assertThatThrownBy(() -> RelayWire.decodeRequest(badLength)).hasMessageContaining("domain length 100");
  }
}
