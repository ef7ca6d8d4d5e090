package io.lazypull.erofs;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * File contents are streamed: a 256 MiB tree (no zeros, no duplicate chunks) builds in a
 * child JVM limited to a 64 MiB heap, in the full and chunked layouts.
 */
class StreamingMemoryTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  /** Entry point of the child JVM: LAYOUT SOURCE OUTPUT. */
  public static void main(String[] args) throws IOException {
    MkfsResult r = Mkfs.builder().layout(Layout.fromCliName(args[0])).build()
        .build(Path.of(args[1]), Path.of(args[2]));
    System.out.println("ok " + r.erofsBytes() + " " + r.dataBlob().map(MkfsResult.DataBlob::size).orElse(0L));
  }

  @Test
  void tree256MiB_buildsWith64MiBHeap() throws IOException, InterruptedException {
    Path src = Files.createDirectory(tmp.resolve("src"));
    ByteBuffer mib = ByteBuffer.allocate(MIB);
    for (int f = 0; f < 4; f++) {
      try (FileChannel ch = FileChannel.open(src.resolve("f" + f), StandardOpenOption.CREATE_NEW,
          StandardOpenOption.WRITE)) {
        for (int m = 0; m < 64; m++) {
          for (int i = 0; i < MIB; i += 4096) {
            mib.putInt(i, f * 1000 + m).putInt(i + 4, i); // every 4 KiB block distinct
          }
          ch.write(mib.clear());
        }
      }
    }
    for (String layout : List.of("full", "chunked")) {
      Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
          "-Xmx64m", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
          StreamingMemoryTest.class.getName(), layout, src.toString(), tmp.resolve(layout).toString())
          .redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
      assertThat(p.exitValue()).as(layout + ": " + out).isZero();
      assertThat(out).startsWith("ok ");
      long dataBytes = layout.equals("full") ? Long.parseLong(out.split("\\s+")[1])
          : Long.parseLong(out.split("\\s+")[2]);
      assertThat(dataBytes).isGreaterThanOrEqualTo(256L * MIB);
      Files.deleteIfExists(tmp.resolve(layout));
    }
  }
}
