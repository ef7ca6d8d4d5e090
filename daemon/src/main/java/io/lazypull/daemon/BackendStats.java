package io.lazypull.daemon;

import java.util.List;

/**
 * One backend as the daemon sees it: its circuit breaker's state and its requests (for the
 * metrics and the status).
 *
 * @param backend the backend's description (no credentials)
 * @param state the breaker: "closed" (answers), "open" (not answering: reads fail at once),
 *     "probing"
 * @param requests backend requests made for READs
 * @param errors of those, the ones that failed
 * @param bytes bytes read from it
 * @param latencyBounds upper bounds (seconds) of the latency histogram's buckets
 * @param latencyCounts cumulative counts per bucket (the last: +Inf, = requests answered)
 * @param latencySeconds the sum of all request latencies
 */
public record BackendStats(String backend, String state, long requests, long errors, long bytes,
    List<Double> latencyBounds, List<Long> latencyCounts, double latencySeconds) {}
