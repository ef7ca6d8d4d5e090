package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.LocalDate;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;

/**
 * {@code bench read} dates the daemon's log lines (time of day only) to tell which random reads
 * began while the whole-blob stream ran; a wrong date would put reads on the wrong side.
 */
class BenchReadStreamWindowTest {
  private static long at(LocalDate day, String time) {
    return day.atTime(LocalTime.parse(time)).atZone(ZoneId.systemDefault()).toInstant().toEpochMilli();
  }

  @Test
  void aLineIsDatedOnTheDayOfTheRun() {
    LocalDate day = LocalDate.of(2026, 12, 7);
    long since = at(day, "12:00:00.000");
    assertThat(BenchReadCommand.epochMillis("12:00:01.250", since)).isEqualTo(since + 1250);
    // Just before the run began (the clocks' ms): still that day, not the next.
    assertThat(BenchReadCommand.epochMillis("11:59:59.700", since)).isEqualTo(since - 300);
  }

  @Test
  void aRunThatCrossesMidnightDatesItsLaterLinesTheNextDay() {
    LocalDate day = LocalDate.of(2026, 12, 7);
    long since = at(day, "23:59:59.900");
    assertThat(BenchReadCommand.epochMillis("00:00:00.100", since)).isEqualTo(since + 200);
  }

  @Test
  void thePatternsFindTheStreamsStartAndEndInTheDaemonsLog() {
    String log = """
        15:20:00.001 INFO  [main] Daemon: serving
        [daemon] 15:20:01.123 INFO  [prefetcher] Fetcher: prefetch of blob ab12 (S3): streaming it whole from byte 0
        [daemon] 15:20:02.456 INFO  [prefetcher] Prefetcher: prefetch of blob ab12 (S3): streamed whole (1333 ms)
        """;
    Matcher start = BenchReadCommand.STREAM_START.matcher(log);
    assertThat(start.find()).isTrue();
    assertThat(start.group(1)).isEqualTo("15:20:01.123");
    Matcher end = BenchReadCommand.STREAM_END.matcher(log);
    assertThat(end.find(start.end())).isTrue();
    assertThat(end.group(1)).isEqualTo("15:20:02.456");
    assertThat(BenchReadCommand.STREAM_END.matcher(
        "15:20:02.456 INFO  [prefetcher] Prefetcher: prefetch of blob ab12: the stream broke off (x)").find()).isTrue();
  }
}
