package io.lazypull.containerd;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A containerd remote snapshotter: the snapshots v1 gRPC service on a unix socket, over the
 * snapshots kept under a root directory (see {@link Snapshotter} for the layout). containerd
 * reaches it through a {@code [proxy_plugins.NAME]} of type "snapshot".
 */
public final class SnapshotterServer implements AutoCloseable {
  private final Server server;
  private final EventLoopGroup group;
  private final Snapshotter snapshotter;
  private final Path socket;

  private SnapshotterServer(Server server, EventLoopGroup group, Snapshotter snapshotter, Path socket) {
    this.server = server;
    this.group = group;
    this.snapshotter = snapshotter;
    this.socket = socket;
  }

  /**
   * Loads the snapshots under {@code root} and serves them on {@code socket} (a stale socket
   * file is replaced; the socket is mode 0600: containerd runs as root).
   */
  public static SnapshotterServer start(Path socket, Path root, LazyLayers lazy) throws IOException {
    Snapshotter snapshotter = new Snapshotter(root, lazy);
    Files.createDirectories(socket.toAbsolutePath().getParent());
    Files.deleteIfExists(socket);
    EventLoopGroup group = new EpollEventLoopGroup(2);
    try {
      Server server = NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toAbsolutePath().toString()))
          .channelType(EpollServerDomainSocketChannel.class)
          .bossEventLoopGroup(group)
          .workerEventLoopGroup(group)
          .addService(new SnapshotsService(snapshotter))
          .build()
          .start();
      io.lazypull.sys.Posix.chmod(socket.toString(), 0600);
      return new SnapshotterServer(server, group, snapshotter, socket);
    } catch (IOException | RuntimeException e) {
      group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      throw e;
    }
  }

  /** The lazypull layers the snapshots name: fsid to backend URI. */
  public Map<String, String> lazyLayers() {
    return snapshotter.lazyLayers();
  }

  /** The directory lazypull layers are mounted under (ROOT/layers/FSID). */
  public Path layersDir() {
    return snapshotter.root().resolve("layers");
  }

  public Path socket() {
    return socket;
  }

  /** Blocks until the server stops. */
  public void awaitTermination() throws InterruptedException {
    server.awaitTermination();
  }

  /** Stops serving (calls in progress get 5 s), removes the socket; mounts stay. */
  @Override
  public void close() {
    server.shutdown();
    try {
      if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
        server.shutdownNow();
      }
    } catch (InterruptedException e) {
      server.shutdownNow();
      Thread.currentThread().interrupt();
    }
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    try {
      Files.deleteIfExists(socket);
    } catch (IOException e) {
      // left behind; the next start replaces it
    }
  }
}
