package io.lazypull.cli;

import java.io.FileNotFoundException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/** Turns exceptions into the one-line messages the CLI prints. */
final class Errors {
  private Errors() {}

  static String describe(Throwable e) {
    // Unwrap wrappers that add nothing a user needs.
    while ((e instanceof java.util.concurrent.ExecutionException
            || e instanceof java.util.concurrent.CompletionException
            || e instanceof java.io.UncheckedIOException
            || (e instanceof RuntimeException && e.getClass() == RuntimeException.class))
        && e.getCause() != null) {
      e = e.getCause();
    }
    if (e instanceof NoSuchFileException x) {
      return "no such file or directory: " + x.getFile();
    }
    if (e instanceof FileAlreadyExistsException x) {
      return "already exists: " + x.getFile();
    }
    if (e instanceof AccessDeniedException x) {
      return "permission denied: " + x.getFile();
    }
    if (e instanceof NotDirectoryException x) {
      return "not a directory: " + x.getFile();
    }
    if (e instanceof FileNotFoundException && e.getMessage() != null) {
      return e.getMessage();
    }
    String msg = e.getMessage();
    if (msg == null || msg.isBlank()) {
      return e.getClass().getSimpleName();
    }
    return msg;
  }
}
