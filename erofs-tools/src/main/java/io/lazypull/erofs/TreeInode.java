package io.lazypull.erofs;

import io.lazypull.erofs.format.Erofs;
import java.util.Arrays;
import java.util.Comparator;
import java.util.TreeMap;

/**
 * The in-memory model of one inode of the tree being built: what a source (directory, tar)
 * says about a file, before any on-disk decision. Hard links are one object under several
 * names. The placement results live in {@link InodePlan}, not here.
 */
final class TreeInode {
  /** Dirent order: unsigned bytes, shorter first (memcmp order, as the kernel's lookup needs). */
  static final Comparator<byte[]> NAME_ORDER = Arrays::compareUnsigned;

  int mode;
  long uid;
  long gid;
  long mtime;
  int mtimeNsec;
  int rdevMajor;
  int rdevMinor;
  /** Regular files: content length; symlinks: target length; others 0 (dirs are sized later). */
  long size;
  /** Sorted by full name, so the xattr body is reproducible. */
  final TreeMap<String, byte[]> xattrs = new TreeMap<>();
  /** Directories only: children by name bytes. */
  final TreeMap<byte[], TreeInode> children;
  byte[] symlinkTarget;
  /** Regular files with size > 0. */
  FileContent content;
  /** Where the inode came from, for error messages ("tar entry usr/bin/x", "/src/a/b"). */
  String origin;
  /** A directory a tar implied but never listed: its attributes are defaults. */
  boolean implicit;
  /** Regular files of a tar source: the member's data offset in the uncompressed tar, or -1. */
  long tarDataOffset = -1;

  TreeInode(int mode) {
    this.mode = mode;
    this.children = isDirectory() ? new TreeMap<>(NAME_ORDER) : null;
  }

  boolean isDirectory() {
    return (mode & Erofs.S_IFMT) == Erofs.S_IFDIR;
  }

  boolean isRegular() {
    return (mode & Erofs.S_IFMT) == Erofs.S_IFREG;
  }

  boolean isSymlink() {
    return (mode & Erofs.S_IFMT) == Erofs.S_IFLNK;
  }

  boolean isDevice() {
    int t = mode & Erofs.S_IFMT;
    return t == Erofs.S_IFCHR || t == Erofs.S_IFBLK;
  }
}
