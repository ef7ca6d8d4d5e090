package io.lazypull.cli;

import picocli.CommandLine;

/** Parses byte counts with an optional K, M or G suffix (powers of 1024): 4096, 64K, 1M. */
final class ByteSizes implements CommandLine.ITypeConverter<Long> {
  @Override
  public Long convert(String value) {
    String v = value.trim().toUpperCase(java.util.Locale.ROOT);
    long unit = 1;
    if (v.endsWith("K") || v.endsWith("M") || v.endsWith("G")) {
      unit = switch (v.charAt(v.length() - 1)) {
        case 'K' -> 1L << 10;
        case 'M' -> 1L << 20;
        default -> 1L << 30;
      };
      v = v.substring(0, v.length() - 1);
    }
    try {
      return Math.multiplyExact(Long.parseLong(v), unit);
    } catch (NumberFormatException | ArithmeticException e) {
      throw new CommandLine.TypeConversionException("not a byte count: '" + value + "' (e.g. 65536, 64K, 1M)");
    }
  }
}
