package io.lazypull.protocol;

import java.nio.charset.StandardCharsets;

/**
 * A text command written to the device, one per write(2) (fs/cachefiles/daemon.c). Only the
 * commands an on-demand daemon uses are modelled; {@link #parse} applies the kernel's rules
 * so that the fuse-shim rejects exactly what the kernel rejects, with the same errno.
 */
public sealed interface DeviceCommand {
  /** The bytes to write, e.g. {@code "copen 7,1048576"}. */
  String text();

  /** {@code dir <path>}: the cache's root directory (kernel only; the shim has its own). */
  record Dir(String path) implements DeviceCommand {
    @Override
    public String text() {
      return "dir " + path;
    }
  }

  /** {@code tag <name>}: the cache's name. */
  record Tag(String name) implements DeviceCommand {
    @Override
    public String text() {
      return "tag " + name;
    }
  }

  /** {@code bind ondemand}: brings the cache online in on-demand mode. */
  record Bind(String mode) implements DeviceCommand {
    public static final Bind ONDEMAND = new Bind("ondemand");

    @Override
    public String text() {
      return mode.isEmpty() ? "bind" : "bind " + mode;
    }
  }

  /**
   * {@code copen <msg_id>,<size>}: the answer to an OPEN. {@code size >= 0} is the object's
   * size; a negative size in [-4095, -1] fails the OPEN with that errno.
   */
  record Copen(int msgId, long size) implements DeviceCommand {
    public static Copen error(int msgId, int errno) {
      if (errno <= 0 || errno > 4095) {
        throw new IllegalArgumentException("errno out of range: " + errno);
      }
      return new Copen(msgId, -errno);
    }

    @Override
    public String text() {
      return "copen " + Integer.toUnsignedString(msgId) + "," + size;
    }
  }

  /** {@code restore}: marks every pending request deliverable again (failover, Linux 6.8+). */
  record Restore() implements DeviceCommand {
    public static final Restore INSTANCE = new Restore();

    @Override
    public String text() {
      return "restore";
    }
  }

  /** A rejected command, carrying the errno write(2) would fail with. */
  final class Rejected extends Exception {
    private static final long serialVersionUID = 1L;
    private final int errno;

    public Rejected(int errno, String message) {
      super(message);
      this.errno = errno;
    }

    public int errno() {
      return errno;
    }
  }

  int EINVAL = 22;
  int EOPNOTSUPP = 95;
  int PAGE_SIZE = 4096;

  /**
   * Parses one write(2) buffer the way {@code cachefiles_daemon_write} does: at most
   * PAGE_SIZE-1 bytes, no NUL, cut at the first newline (which may not come first), a command
   * word, then arguments with leading blanks skipped.
   */
  static DeviceCommand parse(byte[] buf) throws Rejected {
    if (buf.length > PAGE_SIZE - 1) {
      throw new Rejected(EOPNOTSUPP, "command longer than " + (PAGE_SIZE - 1) + " bytes");
    }
    for (byte b : buf) {
      if (b == 0) {
        throw new Rejected(EINVAL, "command contains a NUL byte");
      }
    }
    String s = new String(buf, StandardCharsets.ISO_8859_1);
    int nl = s.indexOf('\n');
    if (nl == 0) {
      throw new Rejected(EINVAL, "command starts with a newline");
    }
    if (nl > 0) {
      s = s.substring(0, nl);
    }
    int sp = 0;
    while (sp < s.length() && !Character.isWhitespace(s.charAt(sp))) {
      sp++;
    }
    String word = s.substring(0, sp);
    String args = s.substring(sp).stripLeading();
    switch (word) {
      case "dir":
        if (args.isEmpty()) {
          throw new Rejected(EINVAL, "dir: empty path");
        }
        return new Dir(args);
      case "tag":
        if (args.isEmpty()) {
          throw new Rejected(EINVAL, "tag: empty name");
        }
        return new Tag(args);
      case "bind":
        if (!args.isEmpty() && !args.equals("ondemand")) {
          throw new Rejected(EINVAL, "bind: unknown argument " + args);
        }
        return new Bind(args);
      case "restore":
        return Restore.INSTANCE;
      case "copen":
        return parseCopen(args);
      default:
        throw new Rejected(EOPNOTSUPP, "unknown command '" + word + "'");
    }
  }

  private static Copen parseCopen(String args) throws Rejected {
    int comma = args.indexOf(',');
    if (comma <= 0) {
      throw new Rejected(EINVAL, "copen: expected <id>,<size>");
    }
    long id;
    long size;
    try {
      id = parseKernelLong(args.substring(0, comma));
      size = parseKernelLong(args.substring(comma + 1));
    } catch (NumberFormatException e) {
      throw new Rejected(EINVAL, "copen: bad number in '" + args + "'");
    }
    if (id < 0 || id > 0xffffffffL) {
      throw new Rejected(EINVAL, "copen: bad id " + id);
    }
    if (size < -4095) {
      throw new Rejected(EINVAL, "copen: size " + size + " is neither a size nor an errno");
    }
    return new Copen((int) id, size);
  }

  /** kstrtol with base 0: optional sign, then 0x.. hex, 0.. octal or decimal; one newline allowed. */
  private static long parseKernelLong(String s) {
    if (s.endsWith("\n")) {
      s = s.substring(0, s.length() - 1);
    }
    boolean neg = s.startsWith("-");
    if (neg || s.startsWith("+")) {
      s = s.substring(1);
    }
    long v;
    if (s.startsWith("0x") || s.startsWith("0X")) {
      v = Long.parseLong(s.substring(2), 16);
    } else if (s.length() > 1 && s.startsWith("0")) {
      v = Long.parseLong(s.substring(1), 8);
    } else {
      v = Long.parseLong(s);
    }
    if (s.isEmpty() || v < 0) {
      throw new NumberFormatException(s);
    }
    return neg ? -v : v;
  }
}
