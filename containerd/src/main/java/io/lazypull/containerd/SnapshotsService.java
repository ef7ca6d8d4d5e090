package io.lazypull.containerd;

import com.google.protobuf.Empty;
import com.google.protobuf.Timestamp;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.lazypull.containerd.SnapshotStore.Kind;
import io.lazypull.containerd.SnapshotStore.Snapshot;
import io.lazypull.containerd.api.snapshots.CleanupRequest;
import io.lazypull.containerd.api.snapshots.CommitSnapshotRequest;
import io.lazypull.containerd.api.snapshots.Info;
import io.lazypull.containerd.api.snapshots.ListSnapshotsRequest;
import io.lazypull.containerd.api.snapshots.ListSnapshotsResponse;
import io.lazypull.containerd.api.snapshots.MountsRequest;
import io.lazypull.containerd.api.snapshots.MountsResponse;
import io.lazypull.containerd.api.snapshots.PrepareSnapshotRequest;
import io.lazypull.containerd.api.snapshots.PrepareSnapshotResponse;
import io.lazypull.containerd.api.snapshots.RemoveSnapshotRequest;
import io.lazypull.containerd.api.snapshots.SnapshotsGrpc;
import io.lazypull.containerd.api.snapshots.StatSnapshotRequest;
import io.lazypull.containerd.api.snapshots.StatSnapshotResponse;
import io.lazypull.containerd.api.snapshots.UpdateSnapshotRequest;
import io.lazypull.containerd.api.snapshots.UpdateSnapshotResponse;
import io.lazypull.containerd.api.snapshots.UsageRequest;
import io.lazypull.containerd.api.snapshots.UsageResponse;
import io.lazypull.containerd.api.snapshots.ViewSnapshotRequest;
import io.lazypull.containerd.api.snapshots.ViewSnapshotResponse;
import io.lazypull.containerd.api.types.Mount;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * containerd's snapshots v1 service over {@link Snapshotter}: each call converts, delegates,
 * and turns a {@link SnapshotException} into the gRPC code containerd maps back to its errdefs
 * (NOT_FOUND, ALREADY_EXISTS ...); any other failure is UNKNOWN with its message.
 */
final class SnapshotsService extends SnapshotsGrpc.SnapshotsImplBase {
  private static final Logger log = LoggerFactory.getLogger(SnapshotsService.class);
  private static final int LIST_BATCH = 100;

  private final Snapshotter snapshotter;

  SnapshotsService(Snapshotter snapshotter) {
    this.snapshotter = snapshotter;
  }

  /** A call's body; its exceptions become gRPC statuses. */
  private interface Body<T> {
    T run() throws Exception;
  }

  private static <T> void answer(String what, StreamObserver<T> out, Body<T> body) {
    T reply;
    try {
      reply = body.run();
    } catch (SnapshotException e) {
      log.debug("{}: {} {}", what, e.code, e.getMessage());
      out.onError(status(e).withDescription(e.getMessage()).asRuntimeException());
      return;
    } catch (Exception e) {
      log.warn("{}: {}", what, e.toString());
      out.onError(Status.UNKNOWN.withDescription(what + ": " + e).asRuntimeException());
      return;
    }
    out.onNext(reply);
    out.onCompleted();
  }

  private static Status status(SnapshotException e) {
    switch (e.code) {
      case NOT_FOUND:
        return Status.NOT_FOUND;
      case ALREADY_EXISTS:
        return Status.ALREADY_EXISTS;
      case FAILED_PRECONDITION:
        return Status.FAILED_PRECONDITION;
      case INVALID_ARGUMENT:
        return Status.INVALID_ARGUMENT;
      default:
        return Status.UNKNOWN;
    }
  }

  @Override
  public void prepare(PrepareSnapshotRequest r, StreamObserver<PrepareSnapshotResponse> out) {
    answer("prepare " + r.getKey(), out, () -> PrepareSnapshotResponse.newBuilder()
        .addAllMounts(toProto(snapshotter.create(Kind.ACTIVE, r.getKey(), r.getParent(), r.getLabelsMap()))).build());
  }

  @Override
  public void view(ViewSnapshotRequest r, StreamObserver<ViewSnapshotResponse> out) {
    answer("view " + r.getKey(), out, () -> ViewSnapshotResponse.newBuilder()
        .addAllMounts(toProto(snapshotter.create(Kind.VIEW, r.getKey(), r.getParent(), r.getLabelsMap()))).build());
  }

  @Override
  public void mounts(MountsRequest r, StreamObserver<MountsResponse> out) {
    answer("mounts " + r.getKey(), out, () -> MountsResponse.newBuilder()
        .addAllMounts(toProto(snapshotter.mounts(r.getKey()))).build());
  }

  @Override
  public void commit(CommitSnapshotRequest r, StreamObserver<Empty> out) {
    answer("commit " + r.getKey(), out, () -> {
      snapshotter.commit(r.getName(), r.getKey(), r.getLabelsMap());
      return Empty.getDefaultInstance();
    });
  }

  @Override
  public void remove(RemoveSnapshotRequest r, StreamObserver<Empty> out) {
    answer("remove " + r.getKey(), out, () -> {
      snapshotter.remove(r.getKey());
      return Empty.getDefaultInstance();
    });
  }

  @Override
  public void stat(StatSnapshotRequest r, StreamObserver<StatSnapshotResponse> out) {
    answer("stat " + r.getKey(), out, () -> StatSnapshotResponse.newBuilder().setInfo(toProto(snapshotter.stat(r.getKey()))).build());
  }

  @Override
  public void update(UpdateSnapshotRequest r, StreamObserver<UpdateSnapshotResponse> out) {
    answer("update " + r.getInfo().getName(), out, () -> UpdateSnapshotResponse.newBuilder()
        .setInfo(toProto(snapshotter.update(r.getInfo().getName(), r.getInfo().getLabelsMap(),
            r.getUpdateMask().getPathsList()))).build());
  }

  @Override
  public void list(ListSnapshotsRequest r, StreamObserver<ListSnapshotsResponse> out) {
    List<Snapshot> all;
    try {
      all = snapshotter.list(r.getFiltersList());
    } catch (SnapshotException e) {
      out.onError(status(e).withDescription(e.getMessage()).asRuntimeException());
      return;
    }
    for (int i = 0; i < all.size(); i += LIST_BATCH) {
      ListSnapshotsResponse.Builder b = ListSnapshotsResponse.newBuilder();
      for (Snapshot s : all.subList(i, Math.min(all.size(), i + LIST_BATCH))) {
        b.addInfo(toProto(s));
      }
      out.onNext(b.build());
    }
    out.onCompleted();
  }

  @Override
  public void usage(UsageRequest r, StreamObserver<UsageResponse> out) {
    answer("usage " + r.getKey(), out, () -> {
      Snapshotter.Usage u = snapshotter.usage(r.getKey());
      return UsageResponse.newBuilder().setSize(u.size()).setInodes(u.inodes()).build();
    });
  }

  @Override
  public void cleanup(CleanupRequest r, StreamObserver<Empty> out) {
    answer("cleanup", out, () -> {
      snapshotter.cleanup();
      return Empty.getDefaultInstance();
    });
  }

  private static List<Mount> toProto(List<Snapshotter.MountSpec> mounts) {
    return mounts.stream().map(m -> Mount.newBuilder().setType(m.type()).setSource(m.source())
        .addAllOptions(m.options()).build()).toList();
  }

  private static Info toProto(Snapshot s) {
    return Info.newBuilder()
        .setName(s.name())
        .setParent(s.parent() == null ? "" : s.parent())
        .setKind(switch (s.kind()) {
          case VIEW -> io.lazypull.containerd.api.snapshots.Kind.VIEW;
          case ACTIVE -> io.lazypull.containerd.api.snapshots.Kind.ACTIVE;
          case COMMITTED -> io.lazypull.containerd.api.snapshots.Kind.COMMITTED;
        })
        .setCreatedAt(timestamp(s.createdNanos()))
        .setUpdatedAt(timestamp(s.updatedNanos()))
        .putAllLabels(s.labels())
        .build();
  }

  private static Timestamp timestamp(long nanos) {
    return Timestamp.newBuilder().setSeconds(Math.floorDiv(nanos, 1_000_000_000L))
        .setNanos((int) Math.floorMod(nanos, 1_000_000_000L)).build();
  }
}
