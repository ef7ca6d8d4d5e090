package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The config file: its values become the options' defaults, flags win, errors name key and line. */
class ConfigFileTest {
  @TempDir Path tmp;

  @AfterEach
  void forget() {
    Main.config = null;
  }

  private Path write(String yaml) throws Exception {
    Path f = tmp.resolve("config-" + System.nanoTime() + ".yaml");
    Files.writeString(f, yaml);
    return f;
  }

  private static final String GOOD = String.join("\n",
      "# a node's settings",
      "backend: s3://images/blobs?region=eu-west-1",
      "domains:",
      "  tools: file:///srv/tools",
      "frontend: fanotify",
      "cache:",
      "  dir: /var/cache/lazypull",
      "  size: 20G",
      "  grace: 30m",
      "fetch:",
      "  size: 4M",
      "  threads: 8",
      "timeouts:",
      "  read: 5s",
      "  daemon: 40s",
      "log:",
      "  level: debug",
      "  format: json",
      "metrics:",
      "  address: 127.0.0.1:9464",
      "");

  @Test
  void values_becomeTheDefaultsOfTheirOptions_andFlagsWin() throws Exception {
    ConfigFile c = ConfigFile.load(write(GOOD));
    assertThat(c.defaultFor("up", "--backend")).isEqualTo("s3://images/blobs?region=eu-west-1");
    assertThat(c.defaultFor("daemon", "--fetch-size")).isEqualTo("4194304");
    assertThat(c.defaultFor("daemon", "--read-timeout")).isEqualTo("5000ms");
    assertThat(c.defaultFor("shim", "--daemon-timeout")).isEqualTo("40000ms");
    assertThat(c.defaultFor("up", "--cache-size")).isEqualTo("21474836480");
    assertThat(c.defaultFor("shim", "--cache-grace")).isEqualTo("1800000ms");
    assertThat(c.defaultFor("up", "--metrics-address")).isEqualTo("127.0.0.1:9464");
    assertThat(c.domains()).containsEntry("tools", "file:///srv/tools");

    DaemonCommand d = new DaemonCommand();
    CommandLine cl = new CommandLine(d).setDefaultValueProvider(c.defaults(null));
    cl.parseArgs("--device", "kernel", "--threads", "3");
    assertThat(d.fetchSize).isEqualTo(4 << 20); // from the file
    assertThat(d.threads).isEqualTo(3); // the flag wins over fetch.threads: 8
    assertThat(d.readTimeout).hasSeconds(5);
    assertThat(d.backend).isEqualTo("s3://images/blobs?region=eu-west-1");

    ShimCommand s = new ShimCommand();
    new CommandLine(s).setDefaultValueProvider(c.defaults(null)).parseArgs("--cache-dir", "/x", "--socket", "/y");
    assertThat(s.frontend).isEqualTo("fanotify");
    assertThat(s.cacheOptions.cacheSize).isEqualTo("21474836480");
    assertThat(s.daemonTimeout).hasSeconds(40);
  }

  @Test
  void theShippedExample_isValid_andTheUnitsUseIt() throws Exception {
    Path root = Path.of(System.getProperty("user.dir")).getParent(); // the reactor root (tests run in cli/)
    ConfigFile c = ConfigFile.load(root.resolve("dist/lazypull.yaml"));
    assertThat(c.defaultFor("shim", "--cache-size")).isEqualTo(Long.toString(20L << 30));
    for (String unit : new String[] {"lazypull-daemon.service", "lazypull-daemon-shim.service", "lazypull-shim.service"}) {
      assertThat(Files.readString(root.resolve("dist/systemd").resolve(unit))).contains("--config /etc/lazypull/config.yaml");
    }
  }

  @Test
  void anEmptyFile_changesNothing() throws Exception {
    ConfigFile c = ConfigFile.load(write(""));
    DaemonCommand d = new DaemonCommand();
    new CommandLine(d).setDefaultValueProvider(c.defaults(null)).parseArgs("--device", "kernel");
    assertThat(d.fetchSize).isEqualTo(4 << 20);
  }

  @Test
  void badConfigs_nameTheKeyAndTheLine() throws Exception {
    assertBad("cache:\n  sise: 1G\n", "line 2: cache.sise: unknown key (known here: cache.dir, cache.size");
    assertBad("backend: file:///a\ncache:\n  size: lots\n", "line 3: cache.size: 'lots' is not a byte count");
    assertBad("cache:\n  size: 250%\n", "line 2: cache.size: '250%': a percentage is more than 0 and at most 100");
    assertBad("timeouts:\n  read: soon\n", "line 2: timeouts.read: 'soon' is not a duration");
    assertBad("fetch:\n  threads: -2\n", "line 2: fetch.threads: '-2' is not a positive number");
    assertBad("frontend: floppy\n", "line 1: frontend: 'floppy' is not one of fuse, fanotify, kernel, auto");
    assertBad("backend: a\nbackend: b\n", "line 2: backend: given twice");
    assertBad("log:\n  format: xml\n", "line 2: log.format: 'xml' is not one of text, json");
    assertBad("backend:\n  - file:///a\n", "line 1: backend: must be a URI");
    assertBad("daemons:\n  fetch: 1\n", "line 1: daemons: unknown key");
    assertBad("cache: 3\n", "line 1: cache: must be a mapping of its keys (cache.dir, cache.size");
    assertBad("backend: file:///a\nfetch:\n  size: 'unterminated\n", "line 3: not valid YAML: while scanning a quoted scalar");
    assertBad("- just\n- a list\n", "line 1: the file must be a mapping of keys");
  }

  private void assertBad(String yaml, String message) throws Exception {
    Path f = write(yaml);
    assertThatThrownBy(() -> ConfigFile.load(f)).isInstanceOf(ConfigFile.ConfigException.class)
        .hasMessageStartingWith("config " + f + " ").hasMessageContaining(message);
  }

  @Test
  void aBadConfig_isAUsageError_withOneLine_beforeAnythingRuns() throws Exception {
    Path f = write("cache:\n  size: 12Q\n");
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    PrintStream saved = System.err;
    int rc;
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    try {
      rc = Main.execute("up", "--config", f.toString(), "--fsid", "x", tmp.toString());
    } finally {
      System.setErr(saved);
    }
    assertThat(rc).isEqualTo(2);
    assertThat(err.toString(StandardCharsets.UTF_8).strip())
        .isEqualTo("lazypull: config " + f + " line 2: cache.size: '12Q' is not a byte count (want e.g. 4096, 64K, 16M,"
            + " 1G)");
  }
}
