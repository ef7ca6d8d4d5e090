package io.lazypull.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Prometheus text exposition (format 0.0.4): families with HELP and TYPE, counters named
 * {@code ..._total}, label values escaped. Each family is written once, whole.
 */
final class PromText {
  private final StringBuilder out = new StringBuilder();

  /** A counter family with one sample per label set ({@code labels}: name, value pairs). */
  PromText counter(String name, String help, long value, String... labels) {
    return family(name, "counter", help, List.of(new Sample(name, labels, value)));
  }

  PromText gauge(String name, String help, double value, String... labels) {
    return family(name, "gauge", help, List.of(new Sample(name, labels, value)));
  }

  /** A family with several samples, e.g. one per backend or kind. */
  PromText family(String name, String type, String help, List<Sample> samples) {
    if (type.equals("counter") && !name.endsWith("_total")) {
      throw new IllegalArgumentException("a counter's name ends with _total: " + name);
    }
    out.append("# HELP ").append(name).append(' ').append(help.replace("\\", "\\\\").replace("\n", "\\n")).append('\n');
    out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    for (Sample s : samples) {
      out.append(s.name);
      if (s.labels.length > 0) {
        out.append('{');
        for (int i = 0; i < s.labels.length; i += 2) {
          if (i > 0) {
            out.append(',');
          }
          out.append(s.labels[i]).append("=\"").append(escape(s.labels[i + 1])).append('"');
        }
        out.append('}');
      }
      out.append(' ').append(format(s.value)).append('\n');
    }
    return this;
  }

  /** A histogram: cumulative bucket counts by upper bound (the last +Inf), sum and count. */
  static List<Sample> histogram(String name, List<Double> bounds, List<Long> cumulative, double sum, String... labels) {
    List<Sample> s = new ArrayList<>();
    for (int i = 0; i < bounds.size(); i++) {
      String[] l = java.util.Arrays.copyOf(labels, labels.length + 2);
      l[labels.length] = "le";
      l[labels.length + 1] = bounds.get(i).isInfinite() ? "+Inf" : format(bounds.get(i));
      s.add(new Sample(name + "_bucket", l, cumulative.get(i)));
    }
    s.add(new Sample(name + "_sum", labels, sum));
    s.add(new Sample(name + "_count", labels, cumulative.isEmpty() ? 0 : cumulative.get(cumulative.size() - 1)));
    return s;
  }

  /** One line: a sample name (the family's, or _bucket/_sum/_count), labels as pairs, a value. */
  record Sample(String name, String[] labels, double value) {
    Sample(String name, Map<String, String> labels, double value) {
      this(name, flatten(labels), value);
    }

    private static String[] flatten(Map<String, String> m) {
      List<String> l = new ArrayList<>();
      new LinkedHashMap<>(m).forEach((k, v) -> {
        l.add(k);
        l.add(v);
      });
      return l.toArray(new String[0]);
    }
  }

  static String format(double v) {
    if (Double.isInfinite(v)) {
      return v > 0 ? "+Inf" : "-Inf";
    }
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      return Long.toString((long) v);
    }
    return String.format(Locale.ROOT, "%s", v);
  }

  private static String escape(String v) {
    return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
  }

  /** Appends another exposition (a child's), whose families do not repeat ours. */
  PromText append(String exposition) {
    out.append(exposition);
    if (!exposition.isEmpty() && !exposition.endsWith("\n")) {
      out.append('\n');
    }
    return this;
  }

  @Override
  public String toString() {
    return out.toString();
  }
}
