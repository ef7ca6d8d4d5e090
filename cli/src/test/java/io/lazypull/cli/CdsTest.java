package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which class-data archive a daemon starts with (the launcher makes them; see ./lazypull). */
class CdsTest {
  @TempDir Path dir;
  private Path small;
  private Path s3;
  private String savedSmall;
  private String savedS3;

  @BeforeEach
  void archives() throws Exception {
    savedSmall = System.getProperty(Cds.PROPERTY);
    savedS3 = System.getProperty(Cds.S3_PROPERTY);
    small = Files.writeString(dir.resolve("lazypull.jsa"), "small");
    s3 = Files.writeString(dir.resolve("lazypull-s3.jsa"), "s3");
    System.setProperty(Cds.PROPERTY, small.toString());
    System.setProperty(Cds.S3_PROPERTY, s3.toString());
  }

  @AfterEach
  void restore() {
    set(Cds.PROPERTY, savedSmall);
    set(Cds.S3_PROPERTY, savedS3);
  }

  @Test
  void aDaemonOfS3_mapsTheS3Archive_everyOtherTheSmallOne() {
    assertThat(Cds.forDaemon(List.of("s3://bucket/blobs?region=eu-west-1"))).isEqualTo(s3);
    assertThat(Cds.forDaemon(List.of("file:///srv/blobs", "s3://bucket/x"))).isEqualTo(s3);
    assertThat(Cds.forDaemon(List.of("file:///srv/blobs"))).isEqualTo(small);
    assertThat(Cds.forDaemon(List.of("oci://registry.example/app"))).isEqualTo(small);
    assertThat(Cds.forDaemon(java.util.Arrays.asList((String) null))).isEqualTo(small);
  }

  @Test
  void aMissingS3Archive_fallsBackToTheSmallOne_andNoneToNone() throws Exception {
    Files.delete(s3);
    assertThat(Cds.forDaemon(List.of("s3://bucket/blobs"))).isEqualTo(small);
    Files.delete(small);
    assertThat(Cds.forDaemon(List.of("s3://bucket/blobs"))).isNull();
    assertThat(Cds.jvmOptions(null)).isEmpty();
  }

  @Test
  void childrenMapTheirArchive_andLearnTheS3One_forTheDaemonsTheyStart() {
    assertThat(Cds.jvmOptions(small)).contains("-XX:SharedArchiveFile=" + small, "-D" + Cds.PROPERTY + "=" + small,
        "-D" + Cds.S3_PROPERTY + "=" + s3);
  }

  @Test
  void aStack_choosesByItsBackend_andTheDomainsGivenToItsDaemons() throws Exception {
    Stack files = new Stack(dir.resolve("a"), "file:///srv/blobs");
    assertThat(files.daemonCds()).isEqualTo(small);
    files.daemonArgs.addAll(List.of("--prefetch", "all", "--domain", "app=s3://bucket/app"));
    assertThat(files.daemonCds()).isEqualTo(s3);

    Stack domains = new Stack(dir.resolve("b"), null); // the snapshotter's: domains only
    domains.daemonArgs.add("--domain=app=s3://bucket/app");
    assertThat(domains.daemonCds()).isEqualTo(s3);

    Stack set = new Stack(dir.resolve("c"), "s3://bucket/blobs");
    set.daemonCds(null);
    assertThat(set.daemonCds()).as("set to none").isNull();
  }

  private static void set(String key, String value) {
    if (value == null) {
      System.clearProperty(key);
    } else {
      System.setProperty(key, value);
    }
  }
}
