package io.lazypull.cli;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;

/**
 * Parses byte counts: a number with an optional K, M, G or T suffix (powers of 1024; "KiB",
 * "KB" and "k" alike): 4096, 64K, 16M, 1G. Anything else, a negative count or one past
 * Long.MAX_VALUE is a usage error with one clear line, never a NumberFormatException.
 */
final class ByteSizes implements CommandLine.ITypeConverter<Long> {
  private static final Pattern SIZE = Pattern.compile("(\\d+)([kmgt]?)(i?b)?");

  @Override
  public Long convert(String value) {
    Matcher m = SIZE.matcher(value.trim().toLowerCase(Locale.ROOT));
    if (m.matches()) {
      int shift = 10 * ("kmgt".indexOf(m.group(2).isEmpty() ? ' ' : m.group(2).charAt(0)) + 1);
      try {
        return Math.multiplyExact(Long.parseLong(m.group(1)), 1L << shift);
      } catch (NumberFormatException | ArithmeticException e) {
        throw new CommandLine.TypeConversionException("'" + value + "' is too large (at most "
            + Long.MAX_VALUE + " bytes)");
      }
    }
    throw new CommandLine.TypeConversionException("'" + value
        + "' is not a byte count (want e.g. 4096, 64K, 16M, 1G)");
  }
}
