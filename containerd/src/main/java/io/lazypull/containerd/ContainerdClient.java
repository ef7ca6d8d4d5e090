package io.lazypull.containerd;

import com.google.protobuf.ByteString;
import com.google.protobuf.FieldMask;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.StreamObserver;
import io.lazypull.containerd.api.content.ContentGrpc;
import io.lazypull.containerd.api.content.InfoRequest;
import io.lazypull.containerd.api.content.UpdateRequest;
import io.lazypull.containerd.api.content.WriteAction;
import io.lazypull.containerd.api.content.WriteContentRequest;
import io.lazypull.containerd.api.content.WriteContentResponse;
import io.lazypull.containerd.api.images.CreateImageRequest;
import io.lazypull.containerd.api.images.Image;
import io.lazypull.containerd.api.images.ImagesGrpc;
import io.lazypull.containerd.api.images.UpdateImageRequest;
import io.lazypull.containerd.api.leases.CreateRequest;
import io.lazypull.containerd.api.leases.DeleteRequest;
import io.lazypull.containerd.api.leases.LeasesGrpc;
import io.lazypull.containerd.api.snapshots.CommitSnapshotRequest;
import io.lazypull.containerd.api.snapshots.MountsRequest;
import io.lazypull.containerd.api.snapshots.PrepareSnapshotRequest;
import io.lazypull.containerd.api.snapshots.RemoveSnapshotRequest;
import io.lazypull.containerd.api.snapshots.SnapshotsGrpc;
import io.lazypull.containerd.api.snapshots.StatSnapshotRequest;
import io.lazypull.containerd.api.types.Descriptor;
import io.lazypull.containerd.api.types.Mount;
import io.lazypull.containerd.api.version.VersionGrpc;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A client of containerd's gRPC API, as much as 'lazypull pull' and the tests need: content
 * (write blobs with labels), images (create or update), leases (keep what a pull writes from
 * the garbage collector until the image references it), snapshots (through containerd's
 * metadata store, so that containerd knows them). Every call carries the namespace, and the
 * lease once {@link #withLease} set one; every call has a deadline.
 */
public final class ContainerdClient implements AutoCloseable {
  private static final Metadata.Key<String> NAMESPACE = Metadata.Key.of("containerd-namespace", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> LEASE = Metadata.Key.of("containerd-lease", Metadata.ASCII_STRING_MARSHALLER);
  private static final int WRITE_CHUNK = 1 << 20;

  private final ManagedChannel managed;
  private final EventLoopGroup group;
  private final String namespace;
  private final Duration deadline;
  private volatile String lease;
  private final Channel channel;

  private ContainerdClient(ManagedChannel managed, EventLoopGroup group, String namespace, Duration deadline) {
    this.managed = managed;
    this.group = group;
    this.namespace = namespace;
    this.deadline = deadline;
    this.channel = ClientInterceptors.intercept(managed, new Headers());
  }

  /**
   * Connects to containerd's socket (no I/O yet: the first call fails if nothing listens).
   *
   * @param deadline the bound of every call (a snapshot Prepare of a lazypull layer mounts it)
   */
  public static ContainerdClient connect(Path socket, String namespace, Duration deadline) {
    EventLoopGroup group = new EpollEventLoopGroup(1);
    ManagedChannel ch = NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toAbsolutePath().toString()))
        .eventLoopGroup(group)
        .channelType(EpollDomainSocketChannel.class)
        .usePlaintext()
        .maxInboundMessageSize(16 << 20)
        .build();
    return new ContainerdClient(ch, group, namespace, deadline);
  }

  /** Adds the namespace and the lease to every call. */
  private final class Headers implements ClientInterceptor {
    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          headers.put(NAMESPACE, namespace);
          String l = lease;
          if (l != null) {
            headers.put(LEASE, l);
          }
          super.start(listener, headers);
        }
      };
    }
  }

  /** containerd's version ("1.6.20"), a cheap call to see that it answers. */
  public String version() throws IOException {
    return call(() -> VersionGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
        .version(com.google.protobuf.Empty.getDefaultInstance()).getVersion());
  }

  /**
   * Creates a lease that expires after {@code expire} (should we die before deleting it) and
   * makes every later call of this client carry it; returns its id.
   */
  public String withLease(String id, Duration expire) throws IOException {
    String expiry = java.time.Instant.now().plus(expire).truncatedTo(java.time.temporal.ChronoUnit.SECONDS).toString();
    call(() -> leases().create(CreateRequest.newBuilder().setId(id)
        .putLabels("containerd.io/gc.expire", expiry).build()));
    lease = id;
    return id;
  }

  /** Deletes the lease this client carries (what it protected must be referenced by now). */
  public void dropLease() throws IOException {
    String l = lease;
    lease = null;
    if (l != null) {
      call(() -> leases().delete(DeleteRequest.newBuilder().setId(l).build()));
    }
  }

  /** True if the content store has {@code digest}. */
  public boolean hasContent(String digest) throws IOException {
    try {
      call(() -> content().info(InfoRequest.newBuilder().setDigest(digest).build()));
      return true;
    } catch (NotFound e) {
      return false;
    }
  }

  /**
   * Writes a blob into the content store (checked by containerd against {@code digest}) with
   * {@code labels}; a blob already there only gets the labels.
   */
  public void writeContent(String digest, byte[] bytes, Map<String, String> labels) throws IOException {
    if (hasContent(digest)) {
      setContentLabels(digest, labels);
      return;
    }
    CompletableFuture<Void> done = new CompletableFuture<>();
    StreamObserver<WriteContentRequest> out = ContentGrpc.newStub(channel)
        .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
        .write(new StreamObserver<WriteContentResponse>() {
          @Override
          public void onNext(WriteContentResponse r) {}

          @Override
          public void onError(Throwable t) {
            done.completeExceptionally(t);
          }

          @Override
          public void onCompleted() {
            done.complete(null);
          }
        });
    String ref = "lazypull-" + digest;
    int off = 0;
    do {
      int n = Math.min(WRITE_CHUNK, bytes.length - off);
      boolean last = off + n == bytes.length;
      WriteContentRequest.Builder b = WriteContentRequest.newBuilder()
          .setAction(last ? WriteAction.COMMIT : WriteAction.WRITE)
          .setRef(ref).setTotal(bytes.length).setExpected(digest).setOffset(off)
          .setData(ByteString.copyFrom(bytes, off, n));
      if (last) {
        b.putAllLabels(labels);
      }
      out.onNext(b.build());
      off += n;
    } while (off < bytes.length);
    out.onCompleted();
    try {
      await(done);
    } catch (AlreadyExists e) {
      setContentLabels(digest, labels); // written meanwhile by someone else
    }
  }

  private void setContentLabels(String digest, Map<String, String> labels) throws IOException {
    if (labels.isEmpty()) {
      return;
    }
    FieldMask.Builder mask = FieldMask.newBuilder();
    labels.keySet().forEach(k -> mask.addPaths("labels." + k));
    call(() -> content().update(UpdateRequest.newBuilder()
        .setInfo(io.lazypull.containerd.api.content.Info.newBuilder().setDigest(digest).putAllLabels(labels))
        .setUpdateMask(mask).build()));
  }

  /** Creates image {@code name} pointing at {@code target}, or points the existing one there. */
  public void putImage(String name, String mediaType, String digest, long size, Map<String, String> labels) throws IOException {
    Image image = Image.newBuilder().setName(name).putAllLabels(labels)
        .setTarget(Descriptor.newBuilder().setMediaType(mediaType).setDigest(digest).setSize(size)).build();
    try {
      call(() -> images().create(CreateImageRequest.newBuilder().setImage(image).build()));
    } catch (AlreadyExists e) {
      call(() -> images().update(UpdateImageRequest.newBuilder().setImage(image)
          .setUpdateMask(FieldMask.newBuilder().addPaths("target").addPaths("labels")).build()));
    }
  }

  /** The outcome of a Prepare through containerd. */
  public record Prepared(boolean alreadyExists, List<Mount> mounts) {}

  /**
   * Prepares {@code key} on {@code parent} in {@code snapshotter}, through containerd's
   * metadata store; ALREADY_EXISTS (a remote snapshotter made the target) is an outcome here.
   */
  public Prepared prepare(String snapshotter, String key, String parent, Map<String, String> labels) throws IOException {
    try {
      return new Prepared(false, call(() -> snapshots().prepare(PrepareSnapshotRequest.newBuilder()
          .setSnapshotter(snapshotter).setKey(key).setParent(parent).putAllLabels(labels).build())).getMountsList());
    } catch (AlreadyExists e) {
      return new Prepared(true, List.of());
    }
  }

  public void commit(String snapshotter, String name, String key, Map<String, String> labels) throws IOException {
    call(() -> snapshots().commit(CommitSnapshotRequest.newBuilder().setSnapshotter(snapshotter)
        .setName(name).setKey(key).putAllLabels(labels).build()));
  }

  /** The snapshot's info, or null if containerd knows no such snapshot. */
  public io.lazypull.containerd.api.snapshots.Info stat(String snapshotter, String key) throws IOException {
    try {
      return call(() -> snapshots().stat(StatSnapshotRequest.newBuilder().setSnapshotter(snapshotter).setKey(key).build())).getInfo();
    } catch (NotFound e) {
      return null;
    }
  }

  public List<Mount> mounts(String snapshotter, String key) throws IOException {
    return call(() -> snapshots().mounts(MountsRequest.newBuilder().setSnapshotter(snapshotter).setKey(key).build())).getMountsList();
  }

  public void remove(String snapshotter, String key) throws IOException {
    call(() -> snapshots().remove(RemoveSnapshotRequest.newBuilder().setSnapshotter(snapshotter).setKey(key).build()));
  }

  private SnapshotsGrpc.SnapshotsBlockingStub snapshots() {
    return SnapshotsGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  private ContentGrpc.ContentBlockingStub content() {
    return ContentGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  private ImagesGrpc.ImagesBlockingStub images() {
    return ImagesGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  private LeasesGrpc.LeasesBlockingStub leases() {
    return LeasesGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** containerd's NOT_FOUND. */
  public static final class NotFound extends IOException {
    private static final long serialVersionUID = 1L;

    NotFound(String m) {
      super(m);
    }
  }

  /** containerd's ALREADY_EXISTS. */
  public static final class AlreadyExists extends IOException {
    private static final long serialVersionUID = 1L;

    AlreadyExists(String m) {
      super(m);
    }
  }

  private interface Rpc<T> {
    T run();
  }

  /** Runs a call; a gRPC status becomes an IOException saying what containerd answered. */
  private static <T> T call(Rpc<T> rpc) throws IOException {
    try {
      return rpc.run();
    } catch (StatusRuntimeException e) {
      throw translate(e.getStatus());
    }
  }

  private void await(CompletableFuture<Void> f) throws IOException {
    try {
      f.get(deadline.toMillis() + 5000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof StatusRuntimeException s) {
        throw translate(s.getStatus());
      }
      throw new IOException(e.getCause());
    } catch (TimeoutException e) {
      throw new IOException("containerd did not answer within " + deadline.toSeconds() + " s");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted");
    }
  }

  private static IOException translate(Status s) {
    String what = s.getDescription() == null ? s.getCode().name() : s.getDescription();
    switch (s.getCode()) {
      case NOT_FOUND:
        return new NotFound(what);
      case ALREADY_EXISTS:
        return new AlreadyExists(what);
      case UNAVAILABLE:
        return new IOException("containerd is not reachable: " + what, s.getCause());
      default:
        return new IOException("containerd: " + s.getCode() + ": " + what, s.getCause());
    }
  }

  @Override
  public void close() {
    managed.shutdownNow();
    try {
      managed.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
  }
}
