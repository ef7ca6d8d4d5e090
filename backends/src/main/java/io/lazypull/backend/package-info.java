/**
 * Content-addressed blob backends. Entry points: {@link io.lazypull.backend.Backends#open}
 * returns a {@link io.lazypull.backend.BlobBackend} for a {@code file://}, {@code s3://} or
 * {@code oci://} URI, configured by {@link io.lazypull.backend.BackendOptions}; failures are
 * {@link io.lazypull.backend.BackendException}s with a kind. Everything else in the package is
 * package-private: the stores (one attempt each) and the one layer of shared fetch behaviour
 * that wraps them.
 */
package io.lazypull.backend;
