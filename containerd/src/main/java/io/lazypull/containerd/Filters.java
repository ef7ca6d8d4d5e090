package io.lazypull.containerd;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * containerd's filter syntax for List: each filter is selectors joined by ',' (all must match),
 * and a snapshot is listed if any filter matches (none given: all). A selector is a field path
 * ({@code name}, {@code parent}, {@code kind}, {@code labels.KEY}; a part may be quoted, as in
 * {@code labels."containerd.io/snapshot.ref"}), optionally an operator ({@code ==}, {@code !=},
 * {@code ~=} for a regular expression) and a value (quoted or bare). A field alone means
 * "present and not empty".
 */
final class Filters {
  private Filters() {}

  /** The fields of a snapshot a filter can name. */
  interface Fields {
    /** The value at {@code path} ("labels", KEY for a label), or null. */
    String get(List<String> path);
  }

  static Predicate<Fields> parse(List<String> filters) throws SnapshotException {
    List<Predicate<Fields>> any = new ArrayList<>();
    for (String f : filters) {
      if (!f.isBlank()) {
        any.add(parseOne(f));
      }
    }
    if (any.isEmpty()) {
      return x -> true;
    }
    return x -> any.stream().anyMatch(p -> p.test(x));
  }

  private static Predicate<Fields> parseOne(String s) throws SnapshotException {
    Parser p = new Parser(s);
    List<Predicate<Fields>> all = new ArrayList<>();
    do {
      all.add(p.selector());
    } while (p.eat(','));
    if (!p.atEnd()) {
      throw p.error("unexpected '" + s.charAt(p.pos) + "'");
    }
    return x -> all.stream().allMatch(q -> q.test(x));
  }

  /** The fields of a stored snapshot. */
  static Fields of(SnapshotStore.Snapshot s) {
    return path -> {
      switch (path.get(0)) {
        case "name":
          return s.name();
        case "parent":
          return s.parent() == null ? "" : s.parent(); // containerd's "no parent"

        case "kind":
          return s.kind().name().toLowerCase(java.util.Locale.ROOT);
        case "labels":
          if (path.size() < 2) {
            return null;
          }
          Map<String, String> l = s.labels();
          return l.get(String.join(".", path.subList(1, path.size())));
        default:
          return null;
      }
    };
  }

  private static final class Parser {
    final String s;
    int pos;

    Parser(String s) {
      this.s = s;
    }

    Predicate<Fields> selector() throws SnapshotException {
      skipSpaces();
      List<String> path = new ArrayList<>();
      path.add(part());
      while (eat('.')) {
        path.add(part());
      }
      skipSpaces();
      String op = null;
      for (String o : List.of("==", "!=", "~=")) {
        if (s.startsWith(o, pos)) {
          op = o;
          pos += 2;
          break;
        }
      }
      if (op == null) {
        return x -> {
          String v = x.get(path);
          return v != null && !v.isEmpty();
        };
      }
      skipSpaces();
      String value = peek() == '"' ? quoted() : bare();
      switch (op) {
        case "==":
          return x -> value.equals(x.get(path));
        case "!=":
          return x -> !value.equals(x.get(path));
        default:
          Pattern re;
          try {
            re = Pattern.compile(value);
          } catch (java.util.regex.PatternSyntaxException e) {
            throw error("bad regular expression '" + value + "'");
          }
          return x -> {
            String v = x.get(path);
            return v != null && re.matcher(v).find();
          };
      }
    }

    String part() throws SnapshotException {
      if (peek() == '"') {
        return quoted();
      }
      int start = pos;
      while (pos < s.length() && (Character.isLetterOrDigit(s.charAt(pos)) || s.charAt(pos) == '_')) {
        pos++;
      }
      if (start == pos) {
        throw error("a field name expected");
      }
      return s.substring(start, pos);
    }

    String bare() {
      int start = pos;
      while (pos < s.length() && s.charAt(pos) != ',') {
        pos++;
      }
      return s.substring(start, pos).strip();
    }

    String quoted() throws SnapshotException {
      StringBuilder b = new StringBuilder();
      pos++; // the opening quote
      while (pos < s.length()) {
        char c = s.charAt(pos++);
        if (c == '"') {
          return b.toString();
        }
        if (c == '\\' && pos < s.length()) {
          c = s.charAt(pos++);
        }
        b.append(c);
      }
      throw error("unterminated quote");
    }

    boolean eat(char c) {
      skipSpaces();
      if (peek() == c) {
        pos++;
        return true;
      }
      return false;
    }

    char peek() {
      return pos < s.length() ? s.charAt(pos) : 0;
    }

    boolean atEnd() {
      skipSpaces();
      return pos >= s.length();
    }

    void skipSpaces() {
      while (pos < s.length() && s.charAt(pos) == ' ') {
        pos++;
      }
    }

    SnapshotException error(String what) {
      return SnapshotException.invalid("filter '" + s + "' at " + pos + ": " + what);
    }
  }
}
