package io.lazypull.cli;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import picocli.CommandLine;

/**
 * The config file ({@code --config FILE}, YAML): one schema for every serving command. Each key
 * is the default of the options it names; an option given on the command line wins. A key the
 * schema does not have, a value of the wrong kind or a duplicate is an error naming the file,
 * the key and its line. The schema (docs/operations.md shows it whole):
 *
 * <pre>
 *   backend: URI                 up, daemon --backend
 *   domains: {NAME: URI, ...}    daemon --domain NAME=URI (each)
 *   frontend: fuse|fanotify|kernel|auto            up --frontend (shim: fuse|fanotify)
 *   state-dir: DIR               daemon --state-dir
 *   prefetch: all|list|none      up, daemon --prefetch
 *   cache:  dir: DIR             up, status, gc --cache-dir
 *           size: BYTES|N%       up, shim --cache-size
 *           window: BYTES        up, shim --cache-window
 *           grace: DURATION      up, shim --cache-grace
 *           evict-guard: DURATION                  up, shim --evict-guard
 *   fetch:  size: BYTES          daemon --fetch-size
 *           threads: N           daemon --threads
 *           whole-blob-max: BYTES                  daemon --whole-blob-max
 *   timeouts: read: DURATION     daemon --read-timeout
 *           daemon: DURATION     shim --daemon-timeout
 *   log:    level: warn|info|debug|trace           every command (-v wins)
 *           format: text|json    every command (--log-format)
 *   metrics: socket: PATH        up --ops-socket
 *           address: HOST:PORT   up --metrics-address
 * </pre>
 *
 * {@code up} passes the file on to the daemon and the shim it starts.
 */
final class ConfigFile {
  /** How a key's value is checked (and turned into the option's text); null: fine as it is. */
  private record Key(String kind, Function<String, String> check, Map<String, String> options) {}

  private static final Map<String, Key> SCHEMA = new LinkedHashMap<>();

  static {
    key("backend", "a URI", null, "up", "--backend", "daemon", "--backend");
    key("frontend", "fuse, fanotify, kernel or auto", oneOf("fuse", "fanotify", "kernel", "auto"),
        "up", "--frontend", "shim", "--frontend");
    key("state-dir", "a directory", null, "daemon", "--state-dir");
    key("prefetch", "all, list or none", oneOf("all", "list", "none"), "up", "--prefetch", "daemon", "--prefetch");
    key("cache.dir", "a directory", null, "up", "--cache-dir", "status", "--cache-dir", "gc", "--cache-dir");
    key("cache.size", "a byte count or a percentage", v -> v.trim().endsWith("%") ? percent(v) : bytes(v),
        "up", "--cache-size", "shim", "--cache-size");
    key("cache.window", "a byte count", ConfigFile::bytes, "up", "--cache-window", "shim", "--cache-window");
    key("cache.grace", "a duration", ConfigFile::duration, "up", "--cache-grace", "shim", "--cache-grace");
    key("cache.evict-guard", "a duration", ConfigFile::duration, "up", "--evict-guard", "shim", "--evict-guard");
    key("fetch.size", "a byte count", ConfigFile::bytes, "daemon", "--fetch-size");
    key("fetch.threads", "a number", ConfigFile::positive, "daemon", "--threads");
    key("fetch.whole-blob-max", "a byte count", ConfigFile::bytes, "daemon", "--whole-blob-max");
    key("timeouts.read", "a duration", ConfigFile::duration, "daemon", "--read-timeout");
    key("timeouts.daemon", "a duration", ConfigFile::duration, "shim", "--daemon-timeout");
    key("log.level", "warn, info, debug or trace", oneOf("warn", "info", "debug", "trace"));
    key("log.format", "text or json", oneOf("text", "json"));
    key("metrics.socket", "a path", null, "up", "--ops-socket");
    key("metrics.address", "HOST:PORT", v -> {
      if (!v.matches("[^:\\s]+:\\d{1,5}")) {
        throw new IllegalArgumentException("'" + v + "' is not HOST:PORT");
      }
      return v;
    }, "up", "--metrics-address");
  }

  private static void key(String name, String kind, Function<String, String> check, String... commandOptions) {
    Map<String, String> options = new LinkedHashMap<>();
    for (int i = 0; i < commandOptions.length; i += 2) {
      options.put(commandOptions[i], commandOptions[i + 1]);
    }
    SCHEMA.put(name, new Key(kind, check, options));
  }

  /** A bad config file: the message names the file, the line and the key. */
  static final class ConfigException extends IOException {
    private static final long serialVersionUID = 1L;

    ConfigException(String message) {
      super(message);
    }
  }

  final Path file;
  /** Key -> value, as checked (sizes in bytes, durations in milliseconds). */
  private final Map<String, String> values = new LinkedHashMap<>();
  /** domains: name -> URI. */
  private final Map<String, String> domains = new LinkedHashMap<>();

  private ConfigFile(Path file) {
    this.file = file;
  }

  /** Reads and checks {@code file}. */
  static ConfigFile load(Path file) throws IOException {
    ConfigFile c = new ConfigFile(file);
    String text;
    try {
      text = Files.readString(file);
    } catch (IOException e) {
      throw new ConfigException("config " + file + ": cannot read it: " + Errors.describe(e));
    }
    try (JsonParser p = new YAMLFactory().createParser(text)) {
      JsonToken t = p.nextToken();
      if (t == null) {
        return c; // empty: all defaults
      }
      if (t != JsonToken.START_OBJECT) {
        throw c.error(p.currentTokenLocation(), null, "the file must be a mapping of keys (see docs/operations.md)");
      }
      c.readObject(p, "");
    } catch (JsonProcessingException e) {
      JsonLocation at = e.getLocation();
      // snakeyaml's message: what it was doing, a source excerpt, what it found; keep the words
      String msg = String.join("; ", e.getOriginalMessage().lines()
          .filter(l -> !l.isBlank() && !l.startsWith(" ") && !l.contains("in 'reader'") && !l.contains("in 'string'"))
          .toList());
      throw new ConfigException("config " + file + (at == null ? "" : " line " + at.getLineNr()) + ": not valid YAML: "
          + msg);
    }
    return c;
  }

  private void readObject(JsonParser p, String prefix) throws IOException {
    java.util.Set<String> seen = new java.util.HashSet<>();
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String name = p.currentName();
      JsonLocation at = p.currentTokenLocation();
      String key = prefix + name;
      if (!seen.add(name)) {
        throw error(at, key, "given twice");
      }
      JsonToken v = p.nextToken();
      if (key.equals("domains")) {
        if (v != JsonToken.START_OBJECT) {
          throw error(at, key, "must be a mapping of domain names to backend URIs");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String domain = p.currentName();
          JsonLocation dAt = p.currentTokenLocation();
          if (!p.nextToken().isScalarValue() || p.getText().isBlank()) {
            throw error(dAt, "domains." + domain, "must be a backend URI");
          }
          if (domains.put(domain, p.getText()) != null) {
            throw error(dAt, "domains." + domain, "given twice");
          }
        }
        continue;
      }
      if (v == JsonToken.START_OBJECT) {
        if (SCHEMA.keySet().stream().noneMatch(k -> k.startsWith(key + "."))) {
          throw unknown(at, key);
        }
        readObject(p, key + ".");
        continue;
      }
      Key k = SCHEMA.get(key);
      if (k == null) {
        if (SCHEMA.keySet().stream().anyMatch(x -> x.startsWith(key + "."))) {
          throw error(at, key, "must be a mapping of its keys ("
              + String.join(", ", SCHEMA.keySet().stream().filter(x -> x.startsWith(key + ".")).toList()) + ")");
        }
        throw unknown(at, key);
      }
      if (!v.isScalarValue() || v == JsonToken.VALUE_NULL) {
        throw error(at, key, "must be " + k.kind);
      }
      String text = p.getText();
      try {
        values.put(key, k.check == null ? text : k.check.apply(text));
      } catch (IllegalArgumentException | CommandLine.TypeConversionException e) {
        String m = e.getMessage();
        throw error(at, key, m.contains("(want") ? m : m + " (want " + k.kind + ")");
      }
    }
  }

  private ConfigException unknown(JsonLocation at, String key) {
    List<String> near = new ArrayList<>();
    String section = key.contains(".") ? key.substring(0, key.lastIndexOf('.') + 1) : "";
    for (String k : SCHEMA.keySet()) {
      if (k.startsWith(section) && !k.substring(section.length()).contains(".")) {
        near.add(k);
      } else if (section.isEmpty() && k.contains(".") && !near.contains(k.substring(0, k.indexOf('.')))) {
        near.add(k.substring(0, k.indexOf('.')));
      }
    }
    if (section.isEmpty()) {
      near.add("domains");
    }
    return error(at, key, "unknown key (known here: " + String.join(", ", near) + ")");
  }

  private ConfigException error(JsonLocation at, String key, String what) {
    return new ConfigException("config " + file + " line " + at.getLineNr() + (key == null ? "" : ": " + key)
        + ": " + what);
  }

  // ---------------------------------------------------------------- use

  /** The value of {@code key} as checked, or null. */
  String get(String key) {
    return values.get(key);
  }

  Map<String, String> domains() {
    return domains;
  }

  /** The default of option {@code option} of command {@code command}, or null. */
  String defaultFor(String command, String option) {
    for (Map.Entry<String, String> v : values.entrySet()) {
      Key k = SCHEMA.get(v.getKey());
      if (option.equals(k.options.get(command))) {
        return v.getValue();
      }
    }
    return null;
  }

  /** Config values as picocli defaults: options given on the command line still win. */
  CommandLine.IDefaultValueProvider defaults(CommandLine.IDefaultValueProvider fallback) {
    return arg -> {
      if (arg instanceof CommandLine.Model.OptionSpec o && arg.command() != null) {
        String v = defaultFor(arg.command().name(), o.longestName());
        if (v != null) {
          return v;
        }
      }
      return fallback == null ? arg.defaultValue() : fallback.defaultValue(arg);
    };
  }

  // ---------------------------------------------------------------- checks

  private static String bytes(String v) {
    return Long.toString(new ByteSizes().convert(v));
  }

  private static String percent(String v) {
    String n = v.trim().substring(0, v.trim().length() - 1);
    double d;
    try {
      d = Double.parseDouble(n);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + v + "' is not a percentage");
    }
    if (!(d > 0 && d <= 100)) {
      throw new IllegalArgumentException("'" + v + "': a percentage is more than 0 and at most 100");
    }
    return v.trim();
  }

  private static String duration(String v) {
    return new BackendArgs.DurationConverter().convert(v).toMillis() + "ms";
  }

  private static String positive(String v) {
    try {
      int n = Integer.parseInt(v.trim());
      if (n > 0) {
        return Integer.toString(n);
      }
    } catch (NumberFormatException e) {
      // below
    }
    throw new IllegalArgumentException("'" + v + "' is not a positive number");
  }

  private static Function<String, String> oneOf(String... allowed) {
    return v -> {
      for (String a : allowed) {
        if (a.equals(v.trim())) {
          return a;
        }
      }
      throw new IllegalArgumentException("'" + v + "' is not one of " + String.join(", ", allowed));
    };
  }
}
