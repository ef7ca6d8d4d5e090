package io.lazypull.backend;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The backends' JSON mapper, made on first use: Jackson's classes take ~0.1 s to load, and a
 * daemon serving from S3 or local files may need none of them; its start is on the path of a
 * cold failover. An ObjectMapper is thread-safe once configured (this one never is).
 */
final class Json {
  static final ObjectMapper MAPPER = new ObjectMapper();

  private Json() {}
}
