package io.lazypull.containerd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.lazypull.containerd.SnapshotStore.Kind;
import io.lazypull.containerd.SnapshotStore.Snapshot;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The snapshotter's model on a real directory: containerd's overlayfs snapshotter's mounts
 * and errors, metadata that a new instance (a restart) reads back, and the lazypull-layer
 * path (the remote-snapshotter protocol). Layers are "mounted" by a tmpfs here; the real
 * stack is ContainerdEndToEndTest's.
 */
class SnapshotterTest {
  static final String FSID = "a".repeat(64);
  Path root;
  final List<String> mounted = new ArrayList<>();
  final List<Path> unmounted = new ArrayList<>();

  /** Mounts a tmpfs where a layer goes and records the call. */
  final LazyLayers tmpfs = new LazyLayers() {
    @Override
    public void mount(String fsid, String backend, Path target) throws IOException {
      Mounts.mount("lazypull-test", target.toString(), "tmpfs", Mounts.MS_RDONLY, "size=1m");
      mounted.add(fsid + " " + backend);
    }

    @Override
    public void unmount(Path target) throws IOException {
      Mounts.unmountOrDetach(target);
      unmounted.add(target);
    }
  };

  @BeforeEach
  void setUp() throws IOException {
    root = TestTrees.newDir("snapshotter-");
  }

  @AfterEach
  void tearDown() throws IOException {
    for (Mounts.MountInfo m : Mounts.mountInfos()) {
      if (Path.of(m.mountPoint()).startsWith(root)) {
        Mounts.unmountOrDetach(Path.of(m.mountPoint()));
      }
    }
  }

  @Test
  void prepareCommitView_giveTheOverlaySnapshottersMounts() throws Exception {
    Snapshotter s = new Snapshotter(root, tmpfs);
    List<Snapshotter.MountSpec> m = s.create(Kind.ACTIVE, "k1", "", Map.of());
    Path fs1 = root.resolve("snapshots/1/fs");
    assertThat(m).containsExactly(new Snapshotter.MountSpec("bind", fs1.toString(), List.of("rw", "rbind")));
    Files.writeString(fs1.resolve("f"), "x");
    s.commit("c1", "k1", Map.of("l", "v"));
    assertThat(Files.exists(root.resolve("snapshots/1/work"))).isFalse();

    assertThat(s.create(Kind.VIEW, "v1", "c1", Map.of()))
        .containsExactly(new Snapshotter.MountSpec("bind", fs1.toString(), List.of("ro", "rbind")));
    List<Snapshotter.MountSpec> k2 = s.create(Kind.ACTIVE, "k2", "c1", Map.of());
    Path dir2 = root.resolve("snapshots/3");
    assertThat(k2).containsExactly(new Snapshotter.MountSpec("overlay", "overlay",
        List.of("workdir=" + dir2.resolve("work"), "upperdir=" + dir2.resolve("fs"), "lowerdir=" + fs1)));
    s.commit("c2", "k2", Map.of());
    assertThat(s.create(Kind.VIEW, "v2", "c2", Map.of()))
        .containsExactly(new Snapshotter.MountSpec("overlay", "overlay", List.of("lowerdir=" + dir2.resolve("fs") + ":" + fs1)));
    assertThat(s.usage("c1").inodes()).isEqualTo(2); // fs/ and f
  }

  @Test
  void errors_areContainerdsErrdefs() throws Exception {
    Snapshotter s = new Snapshotter(root, tmpfs);
    s.create(Kind.ACTIVE, "k1", "", Map.of());
    assertCode(() -> s.create(Kind.ACTIVE, "k1", "", Map.of()), SnapshotException.Code.ALREADY_EXISTS);
    assertCode(() -> s.create(Kind.ACTIVE, "k2", "nope", Map.of()), SnapshotException.Code.NOT_FOUND);
    assertCode(() -> s.create(Kind.ACTIVE, "k2", "k1", Map.of()), SnapshotException.Code.INVALID_ARGUMENT);
    assertCode(() -> s.commit("c", "nope", Map.of()), SnapshotException.Code.NOT_FOUND);
    s.commit("c1", "k1", Map.of());
    assertCode(() -> s.commit("c2", "c1", Map.of()), SnapshotException.Code.FAILED_PRECONDITION);
    s.create(Kind.ACTIVE, "k2", "c1", Map.of());
    assertCode(() -> s.remove("c1"), SnapshotException.Code.FAILED_PRECONDITION);
    assertCode(() -> s.stat("nope"), SnapshotException.Code.NOT_FOUND);
    s.remove("k2");
    s.remove("c1");
    assertThat(s.all()).isEmpty();
    assertThat(root.resolve("snapshots")).isEmptyDirectory();
  }

  @Test
  void update_changesLabelsOnly_asContainerdsFieldPaths() throws Exception {
    Snapshotter s = new Snapshotter(root, tmpfs);
    s.create(Kind.ACTIVE, "k", "", Map.of("a", "1", "b", "2"));
    assertThat(s.update("k", Map.of("a", "9"), List.of("labels.a", "labels.b")).labels()).isEqualTo(Map.of("a", "9"));
    assertThat(s.update("k", Map.of("c", "3"), List.of()).labels()).isEqualTo(Map.of("c", "3"));
    assertCode(() -> s.update("k", Map.of(), List.of("parent")), SnapshotException.Code.INVALID_ARGUMENT);
  }

  @Test
  void list_filtersAsContainerdsMetadataStoreAsks() throws Exception {
    Snapshotter s = new Snapshotter(root, tmpfs);
    s.create(Kind.ACTIVE, "k1", "", Map.of(Labels.SNAPSHOT_REF, "sha256:x"));
    s.commit("c1", "k1", Map.of());
    s.create(Kind.ACTIVE, "k2", "c1", Map.of());
    assertThat(names(s.list(List.of("labels.\"containerd.io/snapshot.ref\"==sha256:x,parent==\"\"")))).containsExactly("c1");
    assertThat(names(s.list(List.of("parent==c1", "name==c1")))).containsExactlyInAnyOrder("c1", "k2");
    assertThat(names(s.list(List.of("kind==active")))).containsExactly("k2");
    assertThat(names(s.list(List.of("name~=^k")))).containsExactly("k2");
    assertThat(names(s.list(List.of()))).hasSize(2);
    assertCode(() -> s.list(List.of("name==\"unterminated")), SnapshotException.Code.INVALID_ARGUMENT);
  }

  @Test
  void aNewInstance_keepsEverySnapshot_andCleansWhatNoneNames() throws Exception {
    Snapshotter s = new Snapshotter(root, tmpfs);
    s.create(Kind.ACTIVE, "k1", "", Map.of("x", "y"));
    s.commit("c1", "k1", Map.of());
    s.create(Kind.ACTIVE, "k2", "c1", Map.of());
    // what a crash can leave: a Prepare's temporary dir, a directory whose metadata never
    // made it, a metadata write cut short
    Files.createDirectories(root.resolve("snapshots/new-123/fs"));
    Files.createDirectories(root.resolve("snapshots/99/fs"));
    Files.writeString(root.resolve("metadata.json.tmp"), "{ half");

    Snapshotter again = new Snapshotter(root, tmpfs);
    assertThat(names(again.list(List.of()))).containsExactlyInAnyOrder("c1", "k2");
    assertThat(again.stat("c1").labels()).isEqualTo(Map.of("x", "y"));
    assertThat(root.resolve("snapshots/new-123")).doesNotExist();
    assertThat(root.resolve("metadata.json.tmp")).doesNotExist();
    again.cleanup();
    assertThat(root.resolve("snapshots/99")).doesNotExist();
    assertThat(root.resolve("snapshots/1")).exists();
    // ids are never reused
    again.create(Kind.ACTIVE, "k3", "", Map.of());
    assertThat(again.stat("k3").id()).isGreaterThan(again.stat("k2").id());
  }

  @Test
  void aLazypullLayer_isMountedOnce_committedUnderItsChainId_andPrepareSaysAlreadyExists() throws Exception {
    Requirements.assumeRoot();
    Snapshotter s = new Snapshotter(root, tmpfs);
    Map<String, String> labels = Map.of(Labels.SNAPSHOT_REF, "sha256:chain1", Labels.FSID, FSID,
        Labels.BACKEND, "oci://r.example/app");
    assertCode(() -> s.create(Kind.ACTIVE, "ns/1/extract-1 sha256:chain1", "", labels), SnapshotException.Code.ALREADY_EXISTS);
    Snapshot c = s.stat("sha256:chain1");
    assertThat(c.kind()).isEqualTo(Kind.COMMITTED);
    assertThat(c.labels()).containsEntry(Labels.SNAPSHOT_REF, "sha256:chain1").containsEntry(Labels.FSID, FSID);
    assertThat(Mounts.isMountPoint(root.resolve("layers").resolve(FSID))).isTrue();
    // another namespace pulls the same layer: no second mount
    assertCode(() -> s.create(Kind.ACTIVE, "ns2/7/extract-2 sha256:chain1", "", labels), SnapshotException.Code.ALREADY_EXISTS);
    assertThat(mounted).containsExactly(FSID + " oci://r.example/app");
    // a container on it: an overlay on the layer mount
    List<Snapshotter.MountSpec> m = s.create(Kind.ACTIVE, "ctr", "sha256:chain1", Map.of());
    assertThat(m.get(0).options()).contains("lowerdir=" + root.resolve("layers").resolve(FSID));
    // after a restart (the mount gone too: a reboot) Mounts mounts the layer again
    Mounts.unmountOrDetach(root.resolve("layers").resolve(FSID));
    Snapshotter again = new Snapshotter(root, tmpfs);
    again.mounts("ctr");
    assertThat(mounted).hasSize(2);
    again.remove("ctr");
    again.remove("sha256:chain1");
    assertThat(unmounted).containsExactly(root.resolve("layers").resolve(FSID));
    assertThat(root.resolve("layers").resolve(FSID)).doesNotExist();
  }

  @Test
  void aLazypullLayer_withoutABackend_takesItFromCrisImageRef_orIsRefused() throws Exception {
    Requirements.assumeRoot();
    Snapshotter s = new Snapshotter(root, tmpfs);
    assertCode(() -> s.create(Kind.ACTIVE, "k", "", Map.of(Labels.SNAPSHOT_REF, "sha256:c", Labels.FSID, FSID)),
        SnapshotException.Code.INVALID_ARGUMENT);
    assertCode(() -> s.create(Kind.ACTIVE, "k", "", Map.of(Labels.SNAPSHOT_REF, "sha256:c", Labels.FSID, "nothex",
        Labels.BACKEND, "oci://r/a")), SnapshotException.Code.INVALID_ARGUMENT);
    assertCode(() -> s.create(Kind.ACTIVE, "k", "", Map.of(Labels.SNAPSHOT_REF, "sha256:c", Labels.FSID, FSID,
        Labels.CRI_IMAGE_REF, "registry.example:5000/team/app:v1")), SnapshotException.Code.ALREADY_EXISTS);
    assertThat(mounted).containsExactly(FSID + " oci://registry.example:5000/team/app");
    assertThat(Labels.backendOfImageRef("busybox:1.36")).isEqualTo("oci://docker.io/library/busybox");
    assertThat(Labels.backendOfImageRef("ghcr.io/o/app@sha256:" + FSID)).isEqualTo("oci://ghcr.io/o/app");
  }

  interface Call {
    void run() throws Exception;
  }

  static void assertCode(Call c, SnapshotException.Code code) {
    assertThatThrownBy(c::run).isInstanceOfSatisfying(SnapshotException.class, e -> assertThat(e.code).isEqualTo(code));
  }

  static List<String> names(List<Snapshot> l) {
    return l.stream().map(Snapshot::name).toList();
  }
}
