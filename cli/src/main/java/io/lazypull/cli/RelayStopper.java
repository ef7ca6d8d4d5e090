package io.lazypull.cli;

import io.lazypull.shim.fanotify.FanotifyRelay;
import io.lazypull.sys.Mounts;
import io.lazypull.sys.Posix;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

/**
 * SIGINT / SIGTERM for 'lazypull shim --frontend fanotify'. Asked by a person (or a supervisor)
 * while EROFS mounts use its cache files, the relay keeps serving and says why: its mounts would
 * otherwise wait for a new relay, then get EIO. When the 'up' that started it is gone (the
 * signal is the one it asked the kernel for at its parent's death), nobody restarts it: it
 * detaches those mounts, as a FUSE shim's death takes its mounts with it, and stops. Either way
 * the holder keeps its fanotify group while files of a detached mount are still open, so no read
 * of a hole returns zeros. Any other way the JVM exits (System.exit, the last non-daemon thread)
 * still stops the relay, denying what is pending with EIO rather than letting it through.
 */
final class RelayStopper {
  private static final Logger log = LoggerFactory.getLogger(RelayStopper.class);

  private final FanotifyRelay relay;
  private final CountDownLatch stopped = new CountDownLatch(1);

  RelayStopper(FanotifyRelay relay) {
    this.relay = relay;
  }

  void install() {
    Signal.handle(new Signal("TERM"), s -> onSignal("SIGTERM"));
    Signal.handle(new Signal("INT"), s -> onSignal("SIGINT"));
    Runtime.getRuntime().addShutdownHook(new Thread(this::stop, "relay-shutdown"));
  }

  /** True if this relay was started by an 'up' that is gone (we were re-parented). */
  private static boolean parentGone() {
    String parent = System.getenv(Main.DIE_WITH_PARENT);
    try {
      return parent != null && Posix.getppid() != Integer.parseInt(parent);
    } catch (NumberFormatException e) {
      return false;
    }
  }

  private void onSignal(String name) {
    List<String> mounts = relay.activeMounts();
    if (!mounts.isEmpty() && parentGone()) {
      log.warn("{}: the 'up' that started this relay is gone: detaching {} mount(s) of its cache files ({}) and"
          + " stopping; open files of them read what is cached, and EIO for the rest", name, mounts.size(),
          String.join(", ", mounts));
      for (String m : mounts) {
        try {
          Mounts.unmountOrDetach(java.nio.file.Path.of(m));
        } catch (java.io.IOException e) {
          log.warn("detaching {}: {}", m, e.getMessage());
        }
      }
    } else if (!mounts.isEmpty()) {
      log.error("{}: not stopping: {} EROFS mount(s) still use this relay's cache files ({}); unmount them first."
          + " Without the relay their reads of data not fetched yet would wait, then fail with EIO.", name,
          mounts.size(), String.join(", ", mounts));
      return;
    } else {
      log.info("{}: no mounts use the relay: stopping", name);
    }
    stop();
  }

  private synchronized void stop() {
    if (stopped.getCount() == 0) {
      return;
    }
    relay.close();
    stopped.countDown();
  }

  void awaitStopped() throws InterruptedException {
    stopped.await();
  }
}
