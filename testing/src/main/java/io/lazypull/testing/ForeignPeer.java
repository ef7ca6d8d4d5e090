package io.lazypull.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A client of a unix socket running as another user: uid and gid 65534 (nobody), through
 * setpriv(1) and Debian's python3, so that the server sees other credentials (SO_PEERCRED)
 * than its own. The socket and its directories must let that user connect (chmod them).
 */
public final class ForeignPeer {
  private static final Path PYTHON = Path.of("/usr/bin/python3");
  private static final String SCRIPT = String.join("\n",
      "import socket, sys",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)",
      "s.connect(sys.argv[1])",
      "s.settimeout(10)",
      "try:",
      "    print('closed' if not s.recv(65536) else 'data')",
      "except socket.timeout:",
      "    print('open')",
      "except ConnectionResetError:",
      "    print('closed')");

  private ForeignPeer() {}

  /** Skips the test unless root, setpriv and /usr/bin/python3 are here. */
  public static void assume() {
    Requirements.assumeRoot();
    Requirements.assumeCommand("setpriv");
    Requirements.skipUnless(Files.isExecutable(PYTHON), "needs " + PYTHON);
  }

  /**
   * Connects to the SEQPACKET socket {@code socket} as nobody and says what the server did:
   * "closed" (hung up without a word), "data" (sent something) or "open" (kept the connection
   * and said nothing for 10 s).
   */
  public static String connect(Path socket) throws IOException, InterruptedException {
    Process p = new ProcessBuilder("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        PYTHON.toString(), "-c", SCRIPT, socket.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
    if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
      p.destroyForcibly();
      throw new IOException("the foreign peer failed: " + out);
    }
    return out;
  }

  /** Lets nobody reach {@code socket}: mode 0666, and its directories up to / searchable. */
  public static void openUp(Path socket) throws IOException {
    io.lazypull.sys.Posix.chmod(socket.toString(), 0666);
    for (Path d = socket.toAbsolutePath().getParent(); d != null; d = d.getParent()) {
      int mode = (Integer) Files.getAttribute(d, "unix:mode");
      if ((mode & 0001) == 0) {
        io.lazypull.sys.Posix.chmod(d.toString(), (mode & 07777) | 0001);
      }
    }
  }
}
