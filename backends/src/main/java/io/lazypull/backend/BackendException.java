package io.lazypull.backend;

import java.io.IOException;

/**
 * A backend operation failed. The {@link Kind} says what a caller can do about it; the message
 * names the backend (its {@link BlobBackend#describe() description}, never a secret), the
 * operation, the blob and, where there is one, the HTTP status:
 *
 * <pre>
 * s3://layers/img?endpoint=http://127.0.0.1:9000: size sha256:9f86…: HTTP 403: SignatureDoesNotMatch: …
 * </pre>
 *
 * Messages never carry keys, passwords, tokens or request headers.
 */
public class BackendException extends IOException {
  private static final long serialVersionUID = 1L;

  /** What kind of failure this is, for callers that decide whether to retry or give up. */
  public enum Kind {
    /** The blob does not exist in this backend (HTTP 404, no such file). Not retried. */
    NOT_FOUND,
    /**
     * May succeed if tried again: 5xx, 429, 408, connection refused or reset, timeouts, reads
     * that end early. The shared fetch layer has already retried these with backoff when one
     * reaches a caller.
     */
    TRANSIENT,
    /**
     * Will fail again: wrong credentials (401, 403), bad requests, a bucket or repository
     * that does not exist, bytes that do not match their digest, a read-only backend.
     */
    PERMANENT,
  }

  private final Kind kind;
  private final String backend;
  private final String operation;
  private final String digest;
  private final int status;
  private final String detail;

  /**
   * @param kind what kind of failure
   * @param backend the backend's description (no secrets)
   * @param operation what was being done, e.g. {@code "read [0,4096)"}, {@code "size"}, {@code "put"}
   * @param digest the blob's sha256 hex, or null when the operation is not about one blob
   * @param status the HTTP status, or 0 when there is none
   * @param detail what went wrong, in a few words (no secrets)
   * @param cause the underlying exception, or null
   */
  public BackendException(Kind kind, String backend, String operation, String digest, int status,
      String detail, Throwable cause) {
    super(format(backend, operation, digest, status, detail), cause);
    this.kind = kind;
    this.backend = backend;
    this.operation = operation;
    this.digest = digest;
    this.status = status;
    this.detail = detail == null ? "" : detail;
  }

  private static String format(String backend, String operation, String digest, int status,
      String detail) {
    StringBuilder sb = new StringBuilder();
    sb.append(backend).append(": ").append(operation);
    if (digest != null) {
      sb.append(' ').append(Digests.SHA256_PREFIX).append(digest);
    }
    sb.append(": ");
    if (status > 0) {
      sb.append("HTTP ").append(status);
      if (detail != null && !detail.isEmpty()) {
        sb.append(": ");
      }
    }
    if (detail != null) {
      sb.append(detail);
    }
    return sb.toString();
  }

  public Kind kind() {
    return kind;
  }

  /** The backend's description, as in {@link BlobBackend#describe()}. */
  public String backend() {
    return backend;
  }

  /** The operation that failed, e.g. {@code "read [0,4096)"}. */
  public String operation() {
    return operation;
  }

  /** The blob's sha256 hex, or null. */
  public String digest() {
    return digest;
  }

  /** The HTTP status of the failed request, or 0 when there was none. */
  public int status() {
    return status;
  }

  /** What went wrong, without the backend, operation and blob prefix. */
  String detail() {
    return detail;
  }

  public boolean isNotFound() {
    return kind == Kind.NOT_FOUND;
  }

  public boolean isTransient() {
    return kind == Kind.TRANSIENT;
  }
}
