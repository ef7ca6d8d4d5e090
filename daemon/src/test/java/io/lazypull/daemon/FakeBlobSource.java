package io.lazypull.daemon;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/** Blobs held in memory, with a log of the ranges fetched and switches to fail or corrupt. */
final class FakeBlobSource implements BlobSource {
  /** What {@link #failing} and {@link #sizeFailing} throw: the backend does not answer. */
  static final class Down extends IOException {
    private static final long serialVersionUID = 1L;

    Down(String message) {
      super(message);
    }
  }

  final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
  final List<long[]> fetched = new CopyOnWriteArrayList<>();
  final AtomicInteger sizeCalls = new AtomicInteger();
  volatile boolean failing;
  volatile boolean sizeFailing;
  volatile boolean corrupting;
  volatile CountDownLatch gate; // when set, fetches wait for it
  volatile long gateOffset = -1; // when >= 0, only the fetch at this offset waits for the gate
  volatile long delayMillis; // every fetch takes at least this long
  final List<Long> started = new CopyOnWriteArrayList<>(); // offsets of fetches begun, in order
  final AtomicInteger transfers = new AtomicInteger(); // whole-blob streams begun
  /** When set, a transfer sends 4 KiB, waits for it, then breaks off. */
  volatile CountDownLatch transferStall;

  String add(byte[] data) {
    String digest = sha256(data);
    blobs.put(digest, data);
    return digest;
  }

  static String sha256(byte[] data) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Override
  public long size(String digest) throws IOException {
    sizeCalls.incrementAndGet();
    if (sizeFailing) {
      throw new Down("503 from backend");
    }
    byte[] b = blobs.get(digest);
    if (b == null) {
      throw new FileNotFoundException("no blob " + digest);
    }
    return b.length;
  }

  @Override
  public void readFully(String digest, long offset, ByteBuffer dst) throws IOException {
    started.add(offset);
    CountDownLatch g = gate;
    long at = gateOffset;
    try {
      if (g != null && (at < 0 || at == offset)) {
        g.await();
      }
      if (delayMillis > 0) {
        Thread.sleep(delayMillis);
      }
    } catch (InterruptedException e) {
      throw new IOException(e);
    }
    if (failing) {
      throw new Down("backend is down");
    }
    byte[] b = blobs.get(digest);
    if (b == null) {
      throw new FileNotFoundException("no blob " + digest);
    }
    int len = dst.remaining();
    if (offset + len > b.length) {
      throw new IOException("range beyond the blob");
    }
    fetched.add(new long[] {offset, len});
    int start = dst.position();
    dst.put(b, (int) offset, len);
    if (corrupting) {
      dst.put(start, (byte) (dst.get(start) ^ 1));
    }
    long bad = corruptOffset;
    if (bad >= offset && bad < offset + len) {
      dst.put(start + (int) (bad - offset), (byte) (dst.get(start + (int) (bad - offset)) ^ 1));
    }
  }

  /** When set, {@link #transferRange} requests are the source's (one per window), as a remote one's. */
  volatile boolean remote;
  final List<long[]> rangeTransfers = new CopyOnWriteArrayList<>();
  volatile long corruptOffset = -1; // when >= 0, the byte there is flipped in every answer
  // When set, a range transfer waits for rangeStalls[i] once it has sent rangeStallsAfter[i] bytes.
  volatile CountDownLatch[] rangeStalls;
  volatile long[] rangeStallsAfter;

  @Override
  public boolean remote() {
    return remote;
  }

  @Override
  public void transferRange(String digest, long offset, long length, java.nio.channels.WritableByteChannel target)
      throws IOException {
    if (!remote) {
      BlobSource.super.transferRange(digest, offset, length, target);
      return;
    }
    if (failing) {
      throw new Down("backend is down");
    }
    byte[] b = blobs.get(digest);
    if (b == null) {
      throw new FileNotFoundException("no blob " + digest);
    }
    rangeTransfers.add(new long[] {offset, length});
    fetched.add(new long[] {offset, length});
    byte[] range = Arrays.copyOfRange(b, (int) offset, (int) (offset + length));
    long bad = corruptOffset;
    if (bad >= offset && bad < offset + length) {
      range[(int) (bad - offset)] ^= 1;
    }
    // In uneven parts, as a network delivers them.
    long[] stallsAfter = rangeStallsAfter;
    CountDownLatch[] stalls = rangeStalls;
    int nextStall = 0;
    for (int pos = 0; pos < range.length; ) {
      if (stalls != null && nextStall < stalls.length && pos >= stallsAfter[nextStall]) {
        try {
          if (!stalls[nextStall].await(10, java.util.concurrent.TimeUnit.SECONDS)) {
            throw new Down("stalled transfer never released");
          }
        } catch (InterruptedException e) {
          throw new IOException(e);
        }
        nextStall++;
      }
      int n = Math.min(range.length - pos, 10_000 + pos % 7_000);
      ByteBuffer part = ByteBuffer.wrap(range, pos, n);
      while (part.hasRemaining()) {
        target.write(part);
      }
      pos += n;
    }
  }

  @Override
  public void transferTo(String digest, long size, java.nio.channels.WritableByteChannel target) throws IOException {
    transfers.incrementAndGet();
    CountDownLatch stall = transferStall;
    if (stall != null) {
      target.write(ByteBuffer.wrap(blobs.get(digest), 0, 4096));
      try {
        stall.await();
      } catch (InterruptedException e) {
        throw new IOException(e);
      }
      throw new Down("connection reset in the middle of the transfer");
    }
    BlobSource.super.transferTo(digest, size, target);
  }

  @Override
  public boolean isNotFound(IOException e) {
    return e instanceof FileNotFoundException;
  }

  @Override
  public boolean isUnavailable(IOException e) {
    return e instanceof Down;
  }

  @Override
  public String describe() {
    return "memory";
  }

  long bytesFetched() {
    return fetched.stream().mapToLong(r -> r[1]).sum();
  }
}
