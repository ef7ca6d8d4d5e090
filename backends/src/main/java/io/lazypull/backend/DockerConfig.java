package io.lazypull.backend;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Registry credentials the way the docker CLI stores them, in {@code $DOCKER_CONFIG/config.json}
 * or {@code ~/.docker/config.json}:
 *
 * <pre>
 * { "auths":       { "HOST[:PORT]": { "auth": base64("user:password") } },   keys may also be
 *                                                                            "https://HOST/v1/"
 *   "credHelpers": { "HOST[:PORT]": "NAME" },     run docker-credential-NAME get
 *   "credsStore":  "NAME" }                       the helper for every other host
 * </pre>
 *
 * A helper is a program on PATH that reads the server name on stdin and prints
 * {@code {"Username": ..., "Secret": ...}}. Identity tokens (OAuth refresh tokens) are not
 * supported and are skipped.
 */
final class DockerConfig {
  private static final Logger log = LoggerFactory.getLogger(DockerConfig.class);
  static final String DOCKER_HUB = "registry-1.docker.io";

  /** Credentials and where they came from (a path or helper name; never the secret). */
  record Found(Credentials credentials, String source) {}

  private DockerConfig() {}

  /** The config file the environment points to. */
  static Path configFile(Map<String, String> env) {
    String dir = env.get("DOCKER_CONFIG");
    if (dir != null && !dir.isEmpty()) {
      return Path.of(dir, "config.json");
    }
    String home = env.getOrDefault("HOME", System.getProperty("user.home"));
    return Path.of(home, ".docker", "config.json");
  }

  /** Looks up credentials for {@code hostPort} ("host" or "host:port"). */
  static Optional<Found> lookup(String hostPort, Map<String, String> env) {
    Path file = configFile(env);
    if (!Files.isRegularFile(file)) {
      return Optional.empty();
    }
    JsonNode root;
    try {
      root = Json.MAPPER.readTree(file.toFile());
    } catch (IOException e) {
      log.warn("ignoring {}: not valid JSON ({})", file, e.getClass().getSimpleName());
      return Optional.empty();
    }
    String want = hostPort.toLowerCase(Locale.ROOT);
    JsonNode helpers = root.path("credHelpers");
    for (Map.Entry<String, JsonNode> e : helpers.properties()) {
      if (matches(e.getKey(), want)) {
        return helper(e.getValue().asText(), serverUrl(e.getKey(), want), env);
      }
    }
    for (Map.Entry<String, JsonNode> e : root.path("auths").properties()) {
      if (!matches(e.getKey(), want)) {
        continue;
      }
      JsonNode entry = e.getValue();
      Optional<Credentials> c = fromEntry(entry);
      if (c.isPresent()) {
        return Optional.of(new Found(c.get(), file + " (auths." + e.getKey() + ")"));
      }
      if (entry.hasNonNull("identitytoken")) {
        log.debug("{}: auths.{} has an identity token, which lazypull does not support", file,
            e.getKey());
      }
    }
    String store = root.path("credsStore").asText("");
    if (!store.isEmpty()) {
      return helper(store, serverUrl(hostPort, want), env);
    }
    return Optional.empty();
  }

  private static Optional<Credentials> fromEntry(JsonNode entry) {
    String auth = entry.path("auth").asText("");
    if (!auth.isEmpty()) {
      String decoded;
      try {
        decoded = new String(Base64.getDecoder().decode(auth.trim()), StandardCharsets.UTF_8);
      } catch (IllegalArgumentException e) {
        return Optional.empty();
      }
      int colon = decoded.indexOf(':');
      if (colon > 0) {
        return Optional.of(new Credentials(decoded.substring(0, colon), decoded.substring(colon + 1)));
      }
    }
    String user = entry.path("username").asText("");
    String pass = entry.path("password").asText("");
    if (!user.isEmpty() && !pass.isEmpty()) {
      return Optional.of(new Credentials(user, pass));
    }
    return Optional.empty();
  }

  /** True if a config key ("host:port", "https://host:port/v1/") names {@code hostPort}. */
  static boolean matches(String key, String hostPort) {
    String k = key.toLowerCase(Locale.ROOT).replaceFirst("^[a-z+]+://", "");
    int slash = k.indexOf('/');
    if (slash >= 0) {
      k = k.substring(0, slash);
    }
    if (k.equals(hostPort)) {
      return true;
    }
    return hostPort.equals(DOCKER_HUB)
        && (k.equals("index.docker.io") || k.equals("docker.io"));
  }

  /** What a credential helper is asked for: Docker Hub's historical URL, else the host. */
  private static String serverUrl(String key, String hostPort) {
    return hostPort.equals(DOCKER_HUB) ? "https://index.docker.io/v1/" : key;
  }

  private static Optional<Found> helper(String name, String server, Map<String, String> env) {
    if (!name.matches("[A-Za-z0-9._-]+")) {
      log.warn("ignoring credential helper with a strange name '{}'", name);
      return Optional.empty();
    }
    String program = "docker-credential-" + name;
    Path exe = null;
    for (String dir : env.getOrDefault("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")) {
      Path p = Path.of(dir.isEmpty() ? "." : dir, program);
      if (Files.isExecutable(p)) {
        exe = p;
        break;
      }
    }
    if (exe == null) {
      log.warn("credential helper {} is configured but not on PATH", program);
      return Optional.empty();
    }
    Process proc = null;
    try {
      proc = new ProcessBuilder(exe.toString(), "get")
          .redirectError(ProcessBuilder.Redirect.DISCARD).start();
      try (OutputStream in = proc.getOutputStream()) {
        in.write(server.getBytes(StandardCharsets.UTF_8));
      }
      byte[] out;
      try (InputStream o = proc.getInputStream()) {
        out = o.readNBytes(64 << 10);
      }
      if (!proc.waitFor(10, TimeUnit.SECONDS) || proc.exitValue() != 0) {
        log.debug("{} has no credentials for {}", program, server);
        return Optional.empty();
      }
      JsonNode n = Json.MAPPER.readTree(out);
      String user = n.path("Username").asText("");
      String secret = n.path("Secret").asText("");
      if (secret.isEmpty()) {
        return Optional.empty();
      }
      return Optional.of(new Found(new Credentials(user, secret), program));
    } catch (IOException e) {
      log.warn("credential helper {} failed: {}", program, e.getClass().getSimpleName());
      return Optional.empty();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Optional.empty();
    } finally {
      if (proc != null) {
        proc.destroyForcibly();
      }
    }
  }
}
