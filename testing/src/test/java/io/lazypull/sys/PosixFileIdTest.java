package io.lazypull.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Posix#fileId}: the fanotify relay tells its cache files apart by it, once per event, so
 * it keeps a buffer per thread; a buffer shared by mistake would give one event another's file.
 */
class PosixFileIdTest {
  @TempDir Path tmp;

  @Test
  void theSameFileThroughTwoFds_isOneId_anotherFileIsAnother_andTheInodeIsTheFilesystems() throws Exception {
    Path a = Files.writeString(tmp.resolve("a"), "a");
    Path b = Files.writeString(tmp.resolve("b"), "b");
    int fa = Posix.open(a.toString(), Posix.O_RDONLY, 0);
    int fa2 = Posix.open(a.toString(), Posix.O_RDONLY, 0);
    int fb = Posix.open(b.toString(), Posix.O_RDONLY, 0);
    try {
      assertThat(Posix.fileId(fa)).isEqualTo(Posix.fileId(fa2)).isNotEqualTo(Posix.fileId(fb));
      Object key = Files.readAttributes(a, BasicFileAttributes.class).fileKey(); // "(dev=...,ino=N)"
      assertThat(key.toString()).contains("ino=" + Posix.fileId(fa).ino() + ")");
    } finally {
      Posix.close(fa);
      Posix.close(fa2);
      Posix.close(fb);
    }
  }

  @Test
  void aClosedFd_isAnError() {
    assertThatThrownBy(() -> Posix.fileId(1 << 20)).isInstanceOf(ErrnoException.class).hasMessageContaining("statx");
  }

  @Test
  void manyThreadsAtOnce_eachGetsItsOwnFilesId() throws Exception {
    int files = 8;
    int[] fds = new int[files];
    Posix.FileId[] expected = new Posix.FileId[files];
    for (int i = 0; i < files; i++) {
      fds[i] = Posix.open(Files.writeString(tmp.resolve("f" + i), "x").toString(), Posix.O_RDONLY, 0);
      expected[i] = Posix.fileId(fds[i]);
    }
    ExecutorService pool = Executors.newFixedThreadPool(files);
    try {
      List<Future<Integer>> wrong = new ArrayList<>();
      for (int i = 0; i < files; i++) {
        int n = i;
        wrong.add(pool.submit(() -> {
          int mismatches = 0;
          for (int k = 0; k < 20_000; k++) {
            if (!Posix.fileId(fds[n]).equals(expected[n])) {
              mismatches++;
            }
          }
          return mismatches;
        }));
      }
      for (Future<Integer> f : wrong) {
        assertThat(f.get()).isZero();
      }
    } finally {
      pool.shutdownNow();
      for (int fd : fds) {
        Posix.close(fd);
      }
    }
  }
}
