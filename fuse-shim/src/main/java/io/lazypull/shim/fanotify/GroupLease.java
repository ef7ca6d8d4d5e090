package io.lazypull.shim.fanotify;

import io.lazypull.protocol.HolderWire;
import io.lazypull.sys.Posix;
import io.lazypull.sys.UnixSocket;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The relay's connection to {@code lazypull holder}, which keeps the fanotify group (and the fds
 * of marked cache files) when the relay dies (the daemon's {@code GroupKeeper}). The connection
 * stays open for the relay's life: its closing without {@link #drop} is how the holder learns
 * that the relay is gone.
 */
final class GroupLease implements Closeable {
  private static final int REPLY_TIMEOUT_MILLIS = 90_000; // the holder may wait 60 s for a dying relay

  private final Path path;
  private final UnixSocket socket;

  /** A group kept by the holder: its fd, the fd limit of the relay that read its events, the files. */
  record Adopted(int group, long nofile, Map<String, Integer> files) {}

  private GroupLease(Path path, UnixSocket socket) {
    this.path = path;
    this.socket = socket;
  }

  static GroupLease connect(Path holder) throws IOException {
    try {
      return new GroupLease(holder, UnixSocket.connect(holder, UnixSocket.Type.SEQPACKET));
    } catch (IOException e) {
      throw new IOException("cannot reach the holder at " + holder + " (is 'lazypull holder --socket " + holder
          + "' running?): " + e.getMessage(), e);
    }
  }

  /**
   * The group a previous relay left with the holder, or null: none, make one and {@link #put} it.
   * {@code nofile}: this relay's fd limit (the event fds it will read are below it).
   */
  synchronized Adopted take(long nofile) throws IOException {
    HolderWire.send(socket, "GROUP TAKE " + nofile);
    HolderWire.Line reply = receive();
    switch (reply.word()) {
      case "NONE":
        return null;
      case "BUSY":
        throw new IOException("another fanotify relay (pid " + reply.arg() + ") owns the group of holder " + path);
      case "GROUP":
        break;
      default:
        reply.closeFds();
        throw new IOException("holder " + path + ": " + reply.text());
    }
    if (reply.fds().length != 1) {
      reply.closeFds();
      throw new IOException("holder " + path + " sent GROUP without exactly one fd");
    }
    int group = reply.fds()[0];
    Map<String, Integer> files = new LinkedHashMap<>();
    try {
      long kept = Long.parseLong(reply.arg());
      while (true) {
        HolderWire.Line f = receive();
        if (f.word().equals("END")) {
          return new Adopted(group, kept, files);
        }
        if (!f.word().equals("FILE") || f.fds().length != 1) {
          f.closeFds();
          throw new IOException("holder " + path + " sent '" + f.text() + "' among the group's files");
        }
        files.put(f.arg(), f.fds()[0]);
      }
    } catch (IOException | RuntimeException e) {
      Posix.closeQuietly(group);
      files.values().forEach(Posix::closeQuietly);
      throw e;
    }
  }

  /** Gives the holder a copy of a new group; {@code nofile}: every event fd number is below it. */
  synchronized void put(int group, long nofile) throws IOException {
    HolderWire.send(socket, "GROUP PUT " + nofile, group);
    expectOk("GROUP PUT");
  }

  /**
   * Gives the holder a copy of a cache file's fd, opened before it was marked, under its name in
   * the cache dir ({@code volume/cookie}). Before the mark: a relay that dies right after marking
   * must not leave a marked file its successor can only open after the mark.
   */
  synchronized void keepFile(String name, int fd) throws IOException {
    HolderWire.send(socket, "GROUP FILE " + name, fd);
    expectOk("GROUP FILE");
  }

  /**
   * Tells the holder this relay stops on purpose while cache files are in use: once it is gone,
   * their reads of data not cached get EIO at once (no successor is coming to serve them).
   */
  synchronized void leave() throws IOException {
    HolderWire.send(socket, "GROUP LEAVE");
    expectOk("GROUP LEAVE");
  }

  /** Lets the holder close the group: no cache file of it is in use any more. */
  synchronized void drop() throws IOException {
    HolderWire.send(socket, "GROUP DROP");
    expectOk("GROUP DROP");
  }

  private void expectOk(String what) throws IOException {
    HolderWire.Line reply = receive();
    reply.closeFds();
    if (!reply.word().equals("OK")) {
      throw new IOException(what + " refused by holder " + path + ": " + reply.arg());
    }
  }

  private HolderWire.Line receive() throws IOException {
    short[] rev = Posix.poll(new int[] {socket.fd()}, new short[] {Posix.POLLIN}, REPLY_TIMEOUT_MILLIS);
    if (rev[0] == 0) {
      throw new IOException("holder " + path + " did not answer within " + REPLY_TIMEOUT_MILLIS / 1000 + " s");
    }
    HolderWire.Line l = HolderWire.receive(socket);
    if (l == null) {
      throw new IOException("holder " + path + " closed the connection");
    }
    return l;
  }

  /** Ends the lease: without a {@link #drop} first, the holder guards the group. */
  @Override
  public void close() {
    socket.close();
  }

  @Override
  public String toString() {
    return "holder " + path;
  }
}
