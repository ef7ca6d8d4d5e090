package io.lazypull.containerd;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The snapshotter's metadata: every snapshot by name, kept in one file that is replaced
 * atomically on every change (written to a temporary file, fsynced, renamed over the old one,
 * the directory fsynced). A crash at any point leaves either the old or the new state, never a
 * mix, so a restart after SIGKILL keeps every snapshot whose operation returned.
 *
 * <p>Not thread-safe: {@link Snapshotter} serializes every change.
 */
final class SnapshotStore {
  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
  static final String FILE = "metadata.json";

  enum Kind { VIEW, ACTIVE, COMMITTED }

  /**
   * One snapshot. {@code id} names its directory (snapshots/ID); {@code fsid} and
   * {@code backend} are set for a lazypull layer, mounted on demand instead of unpacked.
   */
  record Snapshot(long id, String name, String parent, Kind kind, Map<String, String> labels,
      long createdNanos, long updatedNanos, long usageSize, long usageInodes, String fsid, String backend) {
    Snapshot {
      labels = labels == null ? Map.of() : Map.copyOf(labels);
    }

    boolean isLazy() {
      return fsid != null;
    }

    Snapshot withLabels(Map<String, String> l, long now) {
      return new Snapshot(id, name, parent, kind, l, createdNanos, now, usageSize, usageInodes, fsid, backend);
    }
  }

  /** The file's content. */
  record State(long nextId, List<Snapshot> snapshots) {}

  private final Path file;
  private final Map<String, Snapshot> byName = new TreeMap<>();
  private long nextId = 1;

  private SnapshotStore(Path file) {
    this.file = file;
  }

  /** Loads the metadata of {@code root} (none yet: empty). */
  static SnapshotStore open(Path root) throws IOException {
    SnapshotStore s = new SnapshotStore(root.resolve(FILE));
    Files.deleteIfExists(root.resolve(FILE + ".tmp")); // a write cut short: the old file stands
    try {
      State st = JSON.readValue(Files.readAllBytes(s.file), State.class);
      s.nextId = st.nextId();
      for (Snapshot sn : st.snapshots()) {
        s.byName.put(sn.name(), sn);
      }
    } catch (NoSuchFileException e) {
      // a new root
    } catch (IOException e) {
      throw new IOException("snapshotter metadata " + s.file + " is unreadable: " + e.getMessage(), e);
    }
    return s;
  }

  Snapshot get(String name) {
    return byName.get(name);
  }

  Collection<Snapshot> all() {
    return List.copyOf(byName.values());
  }

  /** The snapshots whose parent is {@code name}. */
  boolean hasChildren(String name) {
    return byName.values().stream().anyMatch(s -> name.equals(s.parent()));
  }

  long allocateId() {
    return nextId++;
  }

  /** The chain from {@code name} (first) to its base layer (last). */
  List<Snapshot> chain(String name) {
    List<Snapshot> out = new ArrayList<>();
    for (String n = name; n != null && !n.isEmpty(); ) {
      Snapshot s = byName.get(n);
      if (s == null) {
        throw new IllegalStateException("snapshot " + n + " is missing from the metadata (parent of " + name + ")");
      }
      out.add(s);
      n = s.parent();
    }
    return out;
  }

  /** Applies a change in memory and persists it; on failure the memory is rolled back. */
  void commit(List<String> removed, List<Snapshot> added) throws IOException {
    Map<String, Snapshot> before = new LinkedHashMap<>(byName);
    for (String r : removed) {
      byName.remove(r);
    }
    for (Snapshot a : added) {
      byName.put(a.name(), a);
    }
    try {
      save();
    } catch (IOException | RuntimeException e) {
      byName.clear();
      byName.putAll(before);
      throw e;
    }
  }

  /** Persists the id counter alone (before a directory is named after a new id). */
  void saveCounter() throws IOException {
    save();
  }

  private void save() throws IOException {
    byte[] bytes = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(new State(nextId, List.copyOf(byName.values())));
    Path tmp = file.resolveSibling(FILE + ".tmp");
    int fd = Posix.open(tmp.toString(), Posix.O_WRONLY | Posix.O_CREAT | Posix.O_TRUNC | Posix.O_CLOEXEC, 0600);
    try {
      Posix.pwriteFully(fd, ByteBuffer.wrap(bytes), 0);
      Posix.fsync(fd);
    } finally {
      Posix.close(fd);
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    fsyncDir(file.getParent());
  }

  static void fsyncDir(Path dir) throws IOException {
    int fd = Posix.open(dir.toString(), Posix.O_RDONLY | Posix.O_DIRECTORY | Posix.O_CLOEXEC, 0);
    try {
      Posix.fsync(fd);
    } finally {
      Posix.close(fd);
    }
  }
}
