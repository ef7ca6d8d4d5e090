package io.lazypull.protocol.shim;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.protocol.ProtocolException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class ShimWireTest {
  @Test
  void request_write_roundTrips_withNativeOrderHeader() throws Exception {
    ByteBuffer b = ShimWire.Request.write(0x01020304, "copen 7,4096").encode();
    assertThat(b.remaining()).isEqualTo(5 + 12);
    assertThat(b.duplicate().order(ByteOrder.nativeOrder()).getInt(0)).isEqualTo(0x01020304);
    assertThat(b.get(4)).isEqualTo(ShimWire.KIND_WRITE);
    ShimWire.Request r = ShimWire.Request.decode(b);
    assertThat(r.tag()).isEqualTo(0x01020304);
    assertThat(new String(r.payload(), "ISO-8859-1")).isEqualTo("copen 7,4096");
  }

  @Test
  void request_read_hasNoPayload() throws Exception {
    ByteBuffer b = ShimWire.Request.read(-5).encode();
    assertThat(b.remaining()).isEqualTo(5);
    assertThat(ShimWire.Request.decode(b)).satisfies(r -> {
      assertThat(r.tag()).isEqualTo(-5);
      assertThat(r.kind()).isEqualTo(ShimWire.KIND_READ);
    });
  }

  @Test
  void request_shortOrUnknownKind_isProtocolError() {
    assertThatThrownBy(() -> ShimWire.Request.decode(ByteBuffer.allocate(4)))
        .isInstanceOf(ProtocolException.class).hasMessageContaining("shorter");
    ByteBuffer bad = ByteBuffer.allocate(5).order(ByteOrder.nativeOrder()).putInt(1).put((byte) 9).flip();
    assertThatThrownBy(() -> ShimWire.Request.decode(bad)).hasMessageContaining("unknown kind 9");
    ByteBuffer readWithPayload = new ShimWire.Request(3, ShimWire.KIND_READ, new byte[2]).encode();
    assertThatThrownBy(() -> ShimWire.Request.decode(readWithPayload)).hasMessageContaining("payload");
  }

  @Test
  void reply_roundTrips_andClassifiesTagZero() throws Exception {
    ShimWire.Reply r = ShimWire.Reply.decode(new ShimWire.Reply(9, 32, new byte[] {1, 2, 3}).encode());
    assertThat(r.tag()).isEqualTo(9);
    assertThat(r.result()).isEqualTo(32);
    assertThat(r.payload()).containsExactly(1, 2, 3);
    assertThat(r.isWakeup()).isFalse();
    assertThat(ShimWire.Reply.decode(ShimWire.Reply.WAKEUP.encode()).isWakeup()).isTrue();
    ShimWire.Reply busy = ShimWire.Reply.decode(ShimWire.Reply.refusal(16).encode());
    assertThat(busy.isRefusal()).isTrue();
    assertThat(busy.result()).isEqualTo(-16);
  }

  @Test
  void cread_andResult_roundTrip() throws Exception {
    ByteBuffer c = ShimWire.encodeCread(0xfffffffe);
    assertThat(c.remaining()).isEqualTo(5);
    assertThat(ShimWire.decodeCread(c)).isEqualTo(0xfffffffe);
    assertThat(ShimWire.decodeResult(ShimWire.encodeResult(-22))).isEqualTo(-22);
    assertThatThrownBy(() -> ShimWire.decodeCread(ByteBuffer.allocate(4))).isInstanceOf(ProtocolException.class);
    assertThatThrownBy(() -> ShimWire.decodeResult(ByteBuffer.allocate(5))).isInstanceOf(ProtocolException.class);
  }
}
