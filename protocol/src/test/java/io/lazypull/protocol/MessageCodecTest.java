package io.lazypull.protocol;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

class MessageCodecTest {
  /** The worked example of the spec (§2.3): mount -o fsid=test.img, little-endian host. */
  private static final String OPEN_EXAMPLE =
      "00000000 00000000 37000000 01000000"
          + "0f000000 08000000 05000000 00000000"
          + "65726f66732c746573742e696d6700"
          + "746573742e696d67";

  @Test
  void decode_specOpenExample() throws Exception {
    ByteBuffer b = ByteBuffer.wrap(HexFormat.of().parseHex(OPEN_EXAMPLE.replace(" ", "")));
    Message m = MessageCodec.decode(b);
    assertThat(m).isEqualTo(new Message.Open(0, 1, "erofs,test.img", "test.img", 5, 0));
    assertThat(CacheFiles.erofsDomain(((Message.Open) m).volumeKey())).isEqualTo("test.img");
  }

  @Test
  void encode_thenDecode_roundTripsEveryOpcode() throws Exception {
    Message[] all = {
      new Message.Open(7, 3, "erofs,dom", "a".repeat(64), -1, 0),
      new Message.Close(0, 9),
      new Message.Read(-2 /* 0xfffffffe */, 1, 4096L * 1000, 131072),
    };
    for (Message m : all) {
      ByteBuffer enc = MessageCodec.encode(m);
      assertThat(enc.remaining()).isEqualTo(MessageCodec.encodedSize(m));
      assertThat(MessageCodec.decode(enc)).isEqualTo(m);
    }
    assertThat(MessageCodec.encodedSize(all[0])).isEqualTo(16 + 16 + 10 + 64);
  }

  @Test
  void encode_usesNativeOrderWhateverTheBufferSays() throws Exception {
    ByteBuffer big = ByteBuffer.allocate(32).order(ByteOrder.BIG_ENDIAN);
    MessageCodec.encode(new Message.Read(1, 2, 3, 4), big);
    big.flip();
    assertThat(big.order(ByteOrder.nativeOrder()).getInt(8)).isEqualTo(32);
  }

  @Test
  void decode_lenDisagreesWithBytesRead_rejected() {
    ByteBuffer enc = MessageCodec.encode(new Message.Read(1, 2, 0, 4096));
    ByteBuffer longer = ByteBuffer.allocate(40).put(enc).flip().limit(40);
    assertThatThrownBy(() -> MessageCodec.decode(longer)).isInstanceOf(ProtocolException.class)
        .hasMessageContaining("len 32 != 40");
  }

  @Test
  void decode_malformed_rejectedWithReason() {
    assertThatThrownBy(() -> MessageCodec.decode(ByteBuffer.allocate(8)))
        .hasMessageContaining("shorter than its 16-byte header");
    ByteBuffer unknown = MessageCodec.encode(new Message.Close(1, 1));
    unknown.order(ByteOrder.nativeOrder()).putInt(4, 42);
    assertThatThrownBy(() -> MessageCodec.decode(unknown)).hasMessageContaining("unknown opcode 42");

    ByteBuffer open = MessageCodec.encode(new Message.Open(1, 1, "erofs,x", "y", 3, 0));
    open.order(ByteOrder.nativeOrder()).putInt(16, 200); // volume key size beyond the message
    assertThatThrownBy(() -> MessageCodec.decode(open)).hasMessageContaining("!= len");

    ByteBuffer noNul = MessageCodec.encode(new Message.Open(1, 1, "erofs,x", "y", 3, 0));
    noNul.put(32 + 7, (byte) 'z');
    assertThatThrownBy(() -> MessageCodec.decode(noNul)).hasMessageContaining("not NUL-terminated");

    ByteBuffer negative = MessageCodec.encode(new Message.Read(1, 1, 0, 10));
    negative.order(ByteOrder.nativeOrder()).putLong(16, -4096);
    assertThatThrownBy(() -> MessageCodec.decode(negative)).hasMessageContaining("out of bounds");
  }

  @Test
  void printable_escapesNonPrintableBytes() {
    assertThat(MessageCodec.printable("ab\u0000\"c\u00ff")).isEqualTo("\"ab\\x00\\x22c\\xff\"");
  }
}
