package io.lazypull.cli;

import io.lazypull.shim.fanotify.FanotifyRelay;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

/**
 * SIGINT / SIGTERM for 'lazypull shim --frontend fanotify': the relay stops only when no EROFS
 * mount uses its cache files. With such mounts it keeps serving and says why: once its fanotify
 * group is gone, their reads of holes would return zeros (docs/fanotify.md). Any other way the
 * JVM exits (System.exit, the last non-daemon thread) still stops the relay, denying what is
 * pending with EIO rather than letting it through.
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

  private void onSignal(String name) {
    List<String> mounts = relay.activeMounts();
    if (!mounts.isEmpty()) {
      log.error("{}: not stopping: {} EROFS mount(s) still use this relay's cache files ({}); unmount them first."
          + " Without the relay their reads of data not fetched yet would return zeros.", name, mounts.size(),
          String.join(", ", mounts));
      return;
    }
    log.info("{}: no mounts use the relay: stopping", name);
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
