package io.lazypull.backend;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.junit.jupiter.Container;
import org.testcontainers.junit.jupiter.Testcontainers;
import org.testcontainers.localstack.LocalStackContainer;
import org.testcontainers.utility.DockerImageName;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * The S3 contract against LocalStack in Docker, through Testcontainers. Where no Docker engine
 * is reachable (this development machine) the class is skipped with a printed reason; CI with
 * Docker runs it (ci/github/localstack.yml).
 *
 * <p>Image: {@code -Dlazypull.localstack.image=...} or {@code LOCALSTACK_IMAGE}, default a
 * pinned community tag; {@code LOCALSTACK_AUTH_TOKEN} is passed through for images that need
 * one.
 */
@ExtendWith(LocalStackS3BackendTest.SayWhyWhenSkipped.class) // first: it prints the reason
@Testcontainers(disabledWithoutDocker = true)
class LocalStackS3BackendTest extends BlobBackendContract {
  static final String IMAGE = firstNonBlank(System.getProperty("lazypull.localstack.image"),
      System.getenv("LOCALSTACK_IMAGE"), "localstack/localstack:4.4");

  private static String firstNonBlank(String... values) {
    for (String v : values) {
      if (v != null && !v.isBlank()) {
        return v.trim();
      }
    }
    throw new AssertionError();
  }

  @Container
  static final LocalStackContainer localstack = new LocalStackContainer(
      DockerImageName.parse(IMAGE).asCompatibleSubstituteFor("localstack/localstack"))
      .withServices("s3")
      .withEnv("LOCALSTACK_AUTH_TOKEN", System.getenv().getOrDefault("LOCALSTACK_AUTH_TOKEN", ""));

  static BlobBackend backend;

  @BeforeAll
  static void open() throws Exception {
    try (S3Client s3 = S3Client.builder()
        .endpointOverride(localstack.getEndpoint())
        .region(Region.of(localstack.getRegion()))
        .forcePathStyle(true)
        .credentialsProvider(StaticCredentialsProvider.create(
            AwsBasicCredentials.create(localstack.getAccessKey(), localstack.getSecretKey())))
        .build()) {
      s3.createBucket(b -> b.bucket("lazypull"));
    }
    backend = openAnotherStatic();
    backend.put(big().path());
  }

  static BlobBackend openAnotherStatic() throws java.io.IOException {
    return Backends.open("s3://lazypull/ci?endpoint=" + localstack.getEndpoint() + "&region="
        + localstack.getRegion() + "&path-style=true", BackendOptions.builder()
        .credentials(new Credentials(localstack.getAccessKey(), localstack.getSecretKey())).build());
  }

  @AfterAll
  static void close() throws Exception {
    if (backend != null) {
      backend.close();
    }
  }

  @Override
  BlobBackend backend() {
    return backend;
  }

  @Override
  BlobBackend openAnother() throws java.io.IOException {
    return openAnotherStatic();
  }

  /** Prints why the class does not run, so the skip shows in the build log, not only in reports. */
  static final class SayWhyWhenSkipped implements ExecutionCondition {
    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
      if (DockerClientFactory.instance().isDockerAvailable()) {
        return ConditionEvaluationResult.enabled("Docker is available");
      }
      String reason = "no Docker engine reachable (Testcontainers found none): the LocalStack S3 "
          + "tests run in CI with Docker, see ci/github/localstack.yml";
      System.err.println("SKIPPED " + LocalStackS3BackendTest.class.getName() + ": " + reason);
      return ConditionEvaluationResult.disabled(reason);
    }
  }
}
