package io.lazypull.containerd;

import io.lazypull.containerd.SnapshotStore.Kind;
import io.lazypull.containerd.SnapshotStore.Snapshot;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * containerd's snapshotter model on a directory, laid out as containerd's overlayfs snapshotter
 * lays it out, plus lazypull layers:
 *
 * <pre>
 *   ROOT/metadata.json         every snapshot ({@link SnapshotStore}, replaced atomically)
 *   ROOT/snapshots/ID/fs       a snapshot's files (an active one's overlay upperdir)
 *   ROOT/snapshots/ID/work     an active snapshot's overlay workdir
 *   ROOT/layers/FSID           a lazypull layer's EROFS mount, one per layer, shared by every
 *                              snapshot (of every image and namespace) that is this layer
 * </pre>
 *
 * An ordinary layer is unpacked by containerd itself: Prepare returns an overlay mount whose
 * upperdir is the new snapshot's fs/, containerd applies the tar to it and commits. A lazypull
 * layer arrives as a Prepare carrying the labels {@link Labels#SNAPSHOT_REF} (the chain ID it
 * becomes) and {@link Labels#FSID}/{@link Labels#BACKEND}: the layer is mounted on demand, a
 * committed snapshot is recorded under that chain ID and Prepare answers ALREADY_EXISTS, which
 * tells containerd the layer is there (its remote-snapshotter protocol). A container's rootfs
 * is an overlay of the chain's fs/ directories and layer mounts, top first.
 *
 * <p>Crash safety: a snapshot exists once the metadata file that names it has been renamed
 * into place. A new snapshot's directory is made first (under a temporary name, then renamed
 * to its id) and a removed one's is deleted after the metadata: a crash leaves at worst a
 * directory nobody names, which {@link #cleanup()} deletes.
 */
final class Snapshotter {
  private static final Logger log = LoggerFactory.getLogger(Snapshotter.class);
  private static final Pattern FSID = Pattern.compile("[0-9a-f]{64}");

  /** A mount for containerd: type, source, options (as containerd's types.Mount). */
  record MountSpec(String type, String source, List<String> options) {}

  /** Disk usage: bytes (allocated, 4 KiB blocks) and inodes. */
  record Usage(long size, long inodes) {}

  private final Path root;
  private final Path snapshots;
  private final Path layers;
  private final LazyLayers lazy;
  private final SnapshotStore store;
  private final Object lock = new Object();
  private final Map<String, Object> layerLocks = new ConcurrentHashMap<>();

  Snapshotter(Path root, LazyLayers lazy) throws IOException {
    this.root = Files.createDirectories(root.toAbsolutePath());
    this.snapshots = Files.createDirectories(this.root.resolve("snapshots"));
    this.layers = Files.createDirectories(this.root.resolve("layers"));
    this.lazy = lazy;
    this.store = SnapshotStore.open(this.root);
    try (DirectoryStream<Path> d = Files.newDirectoryStream(snapshots, "new-*")) {
      for (Path p : d) {
        deleteTree(p); // a Prepare cut short before its directory got its id
      }
    }
  }

  Path root() {
    return root;
  }

  /** Prepare (writable) or View (read-only) {@code key} on top of {@code parent}. */
  List<MountSpec> create(Kind kind, String key, String parent, Map<String, String> labels) throws IOException {
    if (key.isEmpty()) {
      throw SnapshotException.invalid("a snapshot needs a key");
    }
    String target = labels.get(Labels.SNAPSHOT_REF);
    String fsid = labels.get(Labels.FSID);
    if (target != null && !target.isEmpty() && fsid != null) {
      createLazy(target, parent, labels);
      throw SnapshotException.exists("target snapshot " + target + ": lazypull layer " + fsid + " is mounted");
    }
    synchronized (lock) {
      if (store.get(key) != null) {
        throw SnapshotException.exists("snapshot " + key + " already exists");
      }
      Snapshot p = committedParent(parent);
      Path tmp = Files.createTempDirectory(snapshots, "new-");
      try {
        Path fs = Files.createDirectory(tmp.resolve("fs"));
        if (kind == Kind.ACTIVE) {
          Files.createDirectory(tmp.resolve("work"));
          Posix.chmod(tmp.resolve("work").toString(), 0711);
        }
        Posix.chmod(fs.toString(), 0755); // not masked by the umask
        if (p != null) {
          // the new upper dir has the owner of the parent's root, as containerd's overlay does
          Path parentRoot = fsPath(p);
          Files.setAttribute(fs, "unix:uid", Files.getAttribute(parentRoot, "unix:uid"));
          Files.setAttribute(fs, "unix:gid", Files.getAttribute(parentRoot, "unix:gid"));
        }
        long id = store.allocateId();
        store.saveCounter(); // the id is never handed out twice, even after a crash
        Path dir = snapshots.resolve(Long.toString(id));
        Files.move(tmp, dir);
        tmp = null;
        long now = nowNanos();
        Snapshot s = new Snapshot(id, key, parent == null || parent.isEmpty() ? null : parent, kind, labels,
            now, now, 0, 0, null, null);
        store.commit(List.of(), List.of(s));
        log.debug("{} {} (id {}, parent {})", kind, key, id, parent);
        return mounts(s);
      } finally {
        if (tmp != null) {
          deleteTree(tmp);
        }
      }
    }
  }

  /**
   * A lazypull layer: mounts it (outside the metadata lock: the first mount of a layer fetches
   * its meta blob) and records the committed snapshot {@code target}.
   */
  private void createLazy(String target, String parent, Map<String, String> labels) throws IOException {
    String fsid = labels.get(Labels.FSID);
    String backend = labels.get(Labels.BACKEND);
    if (backend == null) {
      backend = Labels.backendOfImageRef(labels.get(Labels.CRI_IMAGE_REF));
    }
    if (!FSID.matcher(fsid).matches()) {
      throw SnapshotException.invalid("label " + Labels.FSID + " must be a sha256 hex digest, not '" + fsid + "'");
    }
    if (backend == null || backend.isBlank()) {
      throw SnapshotException.invalid("lazypull layer " + fsid + " has no " + Labels.BACKEND + " label");
    }
    synchronized (lock) {
      committedParent(parent);
      if (findCommitted(target, parent) != null) {
        return;
      }
    }
    ensureLayerMounted(fsid, backend);
    synchronized (lock) {
      committedParent(parent); // may have been removed meanwhile
      if (findCommitted(target, parent) != null) {
        return;
      }
      String name = store.get(target) == null ? target : target + "@" + store.allocateId();
      long id = store.allocateId();
      Files.createDirectories(snapshots.resolve(Long.toString(id)));
      long now = nowNanos();
      Map<String, String> l = new HashMap<>(labels);
      l.put(Labels.SNAPSHOT_REF, target);
      store.commit(List.of(), List.of(new Snapshot(id, name, parent == null || parent.isEmpty() ? null : parent,
          Kind.COMMITTED, l, now, now, 0, 0, fsid, backend)));
      log.info("lazypull layer {} committed as {} (parent {})", fsid, name, parent);
    }
  }

  /** The committed snapshot that is {@code target} on {@code parent}, or null. */
  private Snapshot findCommitted(String target, String parent) {
    String p = parent == null || parent.isEmpty() ? null : parent;
    for (Snapshot s : store.all()) {
      if (s.kind() == Kind.COMMITTED && target.equals(s.labels().get(Labels.SNAPSHOT_REF))
          && java.util.Objects.equals(p, s.parent())) {
        return s;
      }
    }
    return null;
  }

  private Snapshot committedParent(String parent) throws SnapshotException {
    if (parent == null || parent.isEmpty()) {
      return null;
    }
    Snapshot p = store.get(parent);
    if (p == null) {
      throw SnapshotException.notFound("parent snapshot " + parent + " does not exist");
    }
    if (p.kind() != Kind.COMMITTED) {
      throw SnapshotException.invalid("parent " + parent + " is not a committed snapshot");
    }
    return p;
  }

  List<MountSpec> mounts(String key) throws IOException {
    Snapshot s;
    synchronized (lock) {
      s = store.get(key);
      if (s == null) {
        throw SnapshotException.notFound("snapshot " + key + " does not exist");
      }
    }
    return mounts(s);
  }

  /** containerd's overlay snapshotter's mounts, with layer mounts for lazypull layers. */
  private List<MountSpec> mounts(Snapshot s) throws IOException {
    List<Snapshot> parents;
    synchronized (lock) {
      parents = s.parent() == null ? List.of() : store.chain(s.parent());
    }
    for (Snapshot p : parents) {
      if (p.isLazy()) {
        ensureLayerMounted(p.fsid(), p.backend()); // after a reboot or a lost stack
      }
    }
    if (s.kind() == Kind.COMMITTED) {
      // containerd never mounts a committed snapshot; answer as a view of it would be
      return List.of(new MountSpec("bind", fsPath(s).toString(), List.of("ro", "rbind")));
    }
    if (parents.isEmpty()) {
      return List.of(new MountSpec("bind", fsPath(s).toString(), List.of(s.kind() == Kind.VIEW ? "ro" : "rw", "rbind")));
    }
    List<String> options = new ArrayList<>();
    if (s.kind() == Kind.ACTIVE) {
      Path dir = snapshots.resolve(Long.toString(s.id()));
      options.add("workdir=" + dir.resolve("work"));
      options.add("upperdir=" + dir.resolve("fs"));
    } else if (parents.size() == 1) {
      return List.of(new MountSpec("bind", fsPath(parents.get(0)).toString(), List.of("ro", "rbind")));
    }
    List<String> lower = new ArrayList<>();
    for (Snapshot p : parents) {
      lower.add(fsPath(p).toString());
    }
    options.add("lowerdir=" + String.join(":", lower));
    return List.of(new MountSpec("overlay", "overlay", options));
  }

  /** The directory holding a snapshot's files: its fs/, or its layer's mount. */
  private Path fsPath(Snapshot s) {
    return s.isLazy() ? layers.resolve(s.fsid()) : snapshots.resolve(Long.toString(s.id())).resolve("fs");
  }

  /** Mounts layer {@code fsid} on ROOT/layers/FSID unless it is mounted. */
  private void ensureLayerMounted(String fsid, String backend) throws IOException {
    synchronized (layerLocks.computeIfAbsent(fsid, k -> new Object())) {
      Path target = layers.resolve(fsid);
      Files.createDirectories(target);
      if (Mounts.isMountPoint(target)) {
        return;
      }
      long t0 = System.nanoTime();
      lazy.mount(fsid, backend, target);
      log.info("mounted lazypull layer {} from {} on {} ({} ms)", fsid, backend, target, (System.nanoTime() - t0) / 1_000_000);
    }
  }

  void commit(String name, String key, Map<String, String> labels) throws IOException {
    synchronized (lock) {
      Snapshot s = store.get(key);
      if (s == null) {
        throw SnapshotException.notFound("snapshot " + key + " does not exist");
      }
      if (s.kind() != Kind.ACTIVE) {
        throw SnapshotException.precondition("snapshot " + key + " is not active");
      }
      if (store.get(name) != null) {
        throw SnapshotException.exists("snapshot " + name + " already exists");
      }
      Usage u = du(fsPath(s));
      Map<String, String> l = new HashMap<>(s.labels());
      l.putAll(labels);
      Snapshot c = new Snapshot(s.id(), name, s.parent(), Kind.COMMITTED, l, nowNanos(), nowNanos(),
          u.size(), u.inodes(), null, null);
      Files.deleteIfExists(snapshots.resolve(Long.toString(s.id())).resolve("work"));
      store.commit(List.of(key), List.of(c));
    }
  }

  void remove(String key) throws IOException {
    Snapshot s;
    synchronized (lock) {
      s = store.get(key);
      if (s == null) {
        throw SnapshotException.notFound("snapshot " + key + " does not exist");
      }
      if (store.hasChildren(key)) {
        throw SnapshotException.precondition("cannot remove snapshot " + key + ": it has children");
      }
      store.commit(List.of(key), List.of());
    }
    deleteTree(snapshots.resolve(Long.toString(s.id())));
    if (s.isLazy()) {
      unmountLayerIfUnused(s.fsid());
    }
  }

  private void unmountLayerIfUnused(String fsid) {
    synchronized (layerLocks.computeIfAbsent(fsid, k -> new Object())) {
      synchronized (lock) {
        if (store.all().stream().anyMatch(x -> fsid.equals(x.fsid()))) {
          return;
        }
      }
      Path target = layers.resolve(fsid);
      try {
        if (Mounts.isMountPoint(target)) {
          lazy.unmount(target);
        }
        Files.deleteIfExists(target);
        log.info("unmounted lazypull layer {}", fsid);
      } catch (IOException e) {
        log.warn("unmounting layer {}: {}", fsid, e.getMessage());
      }
    }
  }

  Snapshot stat(String key) throws SnapshotException {
    synchronized (lock) {
      Snapshot s = store.get(key);
      if (s == null) {
        throw SnapshotException.notFound("snapshot " + key + " does not exist");
      }
      return s;
    }
  }

  /** containerd's Update: only labels change; paths "labels" or "labels.KEY" (none: all labels). */
  Snapshot update(String name, Map<String, String> labels, List<String> paths) throws IOException {
    synchronized (lock) {
      Snapshot s = store.get(name);
      if (s == null) {
        throw SnapshotException.notFound("snapshot " + name + " does not exist");
      }
      Map<String, String> l = new HashMap<>(s.labels());
      if (paths.isEmpty()) {
        l = new HashMap<>(labels);
      }
      for (String p : paths) {
        if (p.startsWith("labels.")) {
          String k = p.substring("labels.".length());
          if (labels.containsKey(k)) {
            l.put(k, labels.get(k));
          } else {
            l.remove(k);
          }
        } else if (p.equals("labels")) {
          l = new HashMap<>(labels);
        } else {
          throw SnapshotException.invalid("cannot update field " + p + " of snapshot " + name);
        }
      }
      Snapshot u = s.withLabels(l, nowNanos());
      store.commit(List.of(), List.of(u));
      return u;
    }
  }

  List<Snapshot> list(List<String> filters) throws SnapshotException {
    Predicate<Filters.Fields> f = Filters.parse(filters);
    List<Snapshot> out = new ArrayList<>();
    synchronized (lock) {
      for (Snapshot s : store.all()) {
        if (f.test(Filters.of(s))) {
          out.add(s);
        }
      }
    }
    return out;
  }

  Usage usage(String key) throws IOException {
    Snapshot s = stat(key);
    if (s.kind() == Kind.ACTIVE) {
      return du(fsPath(s));
    }
    return new Usage(s.usageSize(), s.usageInodes());
  }

  /** Deletes what no snapshot names: snapshot directories, and layer mounts. */
  void cleanup() throws IOException {
    Set<String> ids = new HashSet<>();
    Set<String> fsids = new HashSet<>();
    synchronized (lock) {
      for (Snapshot s : store.all()) {
        ids.add(Long.toString(s.id()));
        if (s.isLazy()) {
          fsids.add(s.fsid());
        }
      }
      try (DirectoryStream<Path> d = Files.newDirectoryStream(snapshots)) {
        for (Path p : d) {
          if (!ids.contains(p.getFileName().toString())) {
            log.info("cleanup: removing {}, which no snapshot names", p);
            deleteTree(p);
          }
        }
      }
    }
    try (DirectoryStream<Path> d = Files.newDirectoryStream(layers)) {
      for (Path p : d) {
        if (!fsids.contains(p.getFileName().toString())) {
          unmountLayerIfUnused(p.getFileName().toString());
        }
      }
    }
  }

  /** The lazypull layers the snapshots name (fsid to backend). */
  Map<String, String> lazyLayers() {
    Map<String, String> out = new HashMap<>();
    synchronized (lock) {
      for (Snapshot s : store.all()) {
        if (s.isLazy()) {
          out.put(s.fsid(), s.backend());
        }
      }
    }
    return out;
  }

  Collection<Snapshot> all() {
    synchronized (lock) {
      return store.all();
    }
  }

  /** Bytes in 4 KiB blocks and inodes under {@code dir}, each hard-linked inode once. */
  static Usage du(Path dir) throws IOException {
    long[] acc = new long[2];
    Set<Object> seen = new HashSet<>();
    Files.walkFileTree(dir, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes a) {
        count(a);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes a) {
        count(a);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult visitFileFailed(Path f, IOException e) {
        return FileVisitResult.CONTINUE;
      }

      private void count(BasicFileAttributes a) {
        if (a.fileKey() == null || seen.add(a.fileKey())) {
          acc[0] += (a.size() + 4095) / 4096 * 4096;
          acc[1]++;
        }
      }
    });
    return new Usage(acc[0], acc[1]);
  }

  static long nowNanos() {
    java.time.Instant i = java.time.Instant.now();
    return i.getEpochSecond() * 1_000_000_000L + i.getNano();
  }

  static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    Files.walkFileTree(p, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
        Files.delete(f);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
        Files.delete(d);
        return FileVisitResult.CONTINUE;
      }
    });
  }
}
