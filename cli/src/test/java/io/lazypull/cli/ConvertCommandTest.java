package io.lazypull.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lazypull.backend.BackendOptions;
import io.lazypull.backend.Backends;
import io.lazypull.backend.BlobBackend;
import io.lazypull.backend.Digests;
import io.lazypull.backend.Manifest;
import io.lazypull.backend.loopback.RegistryServer;
import io.lazypull.backend.loopback.S3ProxyServer;
import io.lazypull.erofs.oci.ConvertedLayer;
import io.lazypull.erofs.oci.Descriptor;
import io.lazypull.erofs.oci.ImageFormat;
import io.lazypull.erofs.oci.ImageManifest;
import io.lazypull.sys.Mounts;
import io.lazypull.testing.Requirements;
import io.lazypull.testing.TestTrees;
import io.lazypull.testing.TreeDiff;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code lazypull convert} with real parts: a four-layer image built from Debian packages'
 * files ({@link TestImage}: whiteouts, an opaque directory, gzip, plain and zstd layers),
 * copied into Debian's docker-registry on loopback by skopeo and saved as a docker-archive by
 * skopeo; converted registry -> registry, OCI layout -> S3Proxy, docker-archive -> registry.
 * Each converted layer is fetched back from the destination, mounted by the kernel (EROFS,
 * file-backed, the data blob as device) and compared with its source tar extracted by GNU tar
 * (whiteouts in overlayfs form). Converting again pushes nothing; bad inputs fail with one
 * line and leave no temporary files.
 */
class ConvertCommandTest {
  static Path dir;
  static TestImage image;
  static RegistryServer registry;
  static S3ProxyServer s3;
  static Path archive;
  static TestImage archived;
  static final String SECRET = UUID.randomUUID().toString();
  static final HttpClient HTTP = HttpClient.newHttpClient();

  record Run(int code, String out, String err) {}

  @BeforeAll
  static void setUp() throws Exception {
    Requirements.assumeRoot();
    Requirements.assumeCommand("docker-registry");
    Requirements.assumeCommand("skopeo");
    Requirements.assumeCommand("setfattr");
    dir = TestTrees.newDir("convert-");
    image = TestImage.build(dir);
    registry = RegistryServer.open(Files.createDirectories(dir.resolve("registry")));
    // --preserve-digests: skopeo would otherwise compress the uncompressed layer on the way.
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "oci:" + image.layout + ":v1",
        "docker://" + registry.hostPort() + "/src/app:v1");
    archive = dir.resolve("app.tar");
    archived = TestImage.build(Files.createDirectories(dir.resolve("for-archive")), TestImage.GZIP,
        TestImage.TAR, TestImage.GZIP, TestImage.GZIP);
    skopeo("copy", "oci:" + archived.layout + ":v1", "docker-archive:" + archive + ":src/app:v1");
    s3 = S3ProxyServer.start(Files.createDirectories(dir.resolve("s3")), "convert-test", SECRET);
    s3.createBucket("images");
    System.setProperty("aws.accessKeyId", "convert-test");
    System.setProperty("aws.secretAccessKey", SECRET);
  }

  @AfterAll
  static void tearDown() throws Exception {
    System.clearProperty("aws.accessKeyId");
    System.clearProperty("aws.secretAccessKey");
    if (registry != null) {
      registry.close();
    }
    if (s3 != null) {
      s3.close();
    }
  }

  static void skopeo(String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("skopeo", "--insecure-policy"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("skopeo finished").isTrue();
    assertThat(p.exitValue()).as(out).isZero();
  }

  static synchronized Run run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      int code = Main.execute(args);
      return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  static Path workDir() throws Exception {
    return TestTrees.newDir("work-");
  }

  static Run convert(Path work, String... args) {
    List<String> all = new ArrayList<>(List.of("convert", "--work-dir", work.toString()));
    all.addAll(List.of(args));
    return run(all.toArray(String[]::new));
  }

  static void assertNoTempFiles(Path work) throws Exception {
    Path tmp = work.resolve("tmp");
    if (Files.isDirectory(tmp)) {
      try (Stream<Path> s = Files.list(tmp)) {
        assertThat(s.toList()).as("left in " + tmp).isEmpty();
      }
    }
  }

  static String registry(String repo) {
    return registry.uri(repo);
  }

  /** GET /v2/REPO/manifests/REF with an Accept header, straight from the registry. */
  static HttpResponse<byte[]> getManifest(String repo, String ref, String accept) throws Exception {
    return HTTP.send(HttpRequest.newBuilder(URI.create("http://" + registry.hostPort() + "/v2/" + repo
        + "/manifests/" + ref)).header("Accept", accept).build(), HttpResponse.BodyHandlers.ofByteArray());
  }

  // ---- conversions ----

  @Test
  void registryToRegistry_servesTheIndexByTagAndDigest_andTheLayersOverlaidAreTheImage() throws Exception {
    Path work = workDir();
    Run r = convert(work, registry("src/app:v1"), registry("conv/app"));
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(r.out()).contains("4 layers converted, 0 reused");
    String ref = r.out().strip().lines().reduce((a, b) -> b).orElseThrow();
    assertThat(ref).startsWith(registry("conv/app:v1") + "@sha256:");
    String indexDigest = ref.substring(ref.indexOf('@') + 1);
    assertNoTempFiles(work);

    HttpResponse<byte[]> byTag = getManifest("conv/app", "v1", Manifest.OCI_INDEX);
    assertThat(byTag.statusCode()).isEqualTo(200);
    assertThat(byTag.headers().firstValue("Content-Type")).hasValue(Manifest.OCI_INDEX);
    assertThat(Digests.SHA256_PREFIX + Digests.sha256Hex(java.nio.ByteBuffer.wrap(byTag.body())))
        .isEqualTo(indexDigest);
    HttpResponse<byte[]> byDigest = getManifest("conv/app", indexDigest, Manifest.OCI_INDEX);
    assertThat(byDigest.body()).isEqualTo(byTag.body());

    JsonNode index = TestImage.JSON.readTree(byTag.body());
    assertThat(index.path("annotations").path(ImageFormat.SOURCE_IMAGE).asText())
        .isEqualTo(image.manifestDigest); // skopeo --preserve-digests kept the manifest
    assertThat(index.path("annotations").path(ImageFormat.SOURCE_REF).asText())
        .isEqualTo(registry("src/app:v1"));
    try (BlobBackend b = Backends.open(registry("conv/app"), BackendOptions.defaults())) {
      checkIndex(b, index, image, List.of("chunked", "tar-index", "chunked", "chunked"), true);
    }
    // The image manifest by digest, with the manifest media type.
    String imageDigest = index.path("manifests").path(0).path("digest").asText();
    HttpResponse<byte[]> m = getManifest("conv/app", imageDigest, Manifest.OCI_MANIFEST);
    assertThat(m.statusCode()).isEqualTo(200);
    assertThat(m.headers().firstValue("Content-Type")).hasValue(Manifest.OCI_MANIFEST);
  }

  @Test
  void registryToRegistry_again_pushesNothing_andAFreshCacheOnlyConverts() throws Exception {
    Path work = workDir();
    Run first = convert(work, registry("src/app:v1"), registry("conv/twice:t"));
    assertThat(first.code()).as(first.err()).isZero();
    assertThat(first.out()).contains("pushed 10 blobs and 3 manifests");

    Map<String, Long> before = snapshot(dir.resolve("registry/data"));
    Run second = convert(work, registry("src/app:v1"), registry("conv/twice:t"));
    assertThat(second.code()).as(second.err()).isZero();
    assertThat(snapshot(dir.resolve("registry/data"))).as("the registry's storage").isEqualTo(before);
    assertThat(second.out()).contains("0 layers converted, 4 reused; pushed 0 blobs and 0 manifests, 0 B");
    assertThat(last(second.out())).isEqualTo(last(first.out()));

    // Without the cache every layer is converted again, to the same blobs: nothing to push.
    Run fresh = convert(workDir(), registry("src/app:v1"), registry("conv/twice:t"));
    assertThat(fresh.code()).as(fresh.err()).isZero();
    assertThat(fresh.out()).contains("4 layers converted, 0 reused; pushed 0 blobs and 0 manifests, 0 B");
    assertThat(last(fresh.out())).isEqualTo(last(first.out()));
  }

  @Test
  void layoutToS3_refsObjectNamesTheIndex_andEveryLayerMountsAsItsTar() throws Exception {
    Path work = workDir();
    String dest = s3.uri("images/lazypull");
    Run r = convert(work, "oci:" + image.layout + ":v1", dest, "--tag", "debianish/app:v1");
    assertThat(r.code()).as(r.err()).isZero();
    assertNoTempFiles(work);
    try (BlobBackend b = Backends.open(dest, BackendOptions.defaults())) {
      Manifest index = b.manifest("debianish/app:v1");
      assertThat(index.mediaType()).isEqualTo(Manifest.OCI_INDEX);
      assertThat(last(r.out())).endsWith("@" + index.digest());
      checkIndex(b, index.json("test"), image, List.of("chunked", "tar-index", "chunked", "chunked"));
    }
    Map<String, Long> before = snapshot(dir.resolve("s3"));
    Run again = convert(work, "oci:" + image.layout + ":v1", dest, "--tag", "debianish/app:v1");
    assertThat(again.out()).contains("pushed 0 blobs and 0 manifests");
    assertThat(snapshot(dir.resolve("s3"))).as("S3Proxy's storage").isEqualTo(before);
  }

  @Test
  void layoutChunked_makesEveryLayerChunked_intoADirectory() throws Exception {
    Path store = Files.createDirectories(dir.resolve("chunked-store"));
    Run r = convert(workDir(), image.layout.toString(), store.toUri().toString(), "--tag", "c/app:v1",
        "--layout", "chunked");
    assertThat(r.code()).as(r.err()).isZero();
    try (BlobBackend b = Backends.open(store.toString(), BackendOptions.defaults())) {
      checkIndex(b, b.manifest("c/app:v1").json("test"), image, List.of("chunked", "chunked", "chunked", "chunked"));
    }
    assertThat(store.resolve("refs/c/app:v1")).isRegularFile();
  }

  @Test
  void aRunKilledEarlier_leavesNothingBehind_norDoesAFailedPush() throws Exception {
    Path work = workDir();
    Process gone = new ProcessBuilder("true").start();
    gone.waitFor(30, TimeUnit.SECONDS);
    Path stale = Files.createDirectories(work.resolve("tmp").resolve(gone.pid() + "-deadbeef/layer-1"));
    Files.writeString(stale.resolve("source"), "half a layer");
    int port;
    try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    Run r = convert(work, "oci:" + image.layout + ":v1", "oci+http://127.0.0.1:" + port + "/nobody/here",
        "--retries", "0");
    assertFails(r, 1, "oci+http://127.0.0.1:" + port + "/nobody/here");
    assertThat(r.err()).contains("ConnectException");
    assertNoTempFiles(work);
  }

  @Test
  void dockerArchiveToRegistry_uncompressedLayersBecomeTarIndex() throws Exception {
    Path work = workDir();
    Run r = convert(work, archive.toString(), registry("conv/archive"));
    assertThat(r.code()).as(r.err()).isZero();
    assertThat(last(r.out())).startsWith(registry("conv/archive:v1") + "@"); // tag from RepoTags
    try (BlobBackend b = Backends.open(registry("conv/archive"), BackendOptions.defaults())) {
      Manifest index = b.manifest("v1");
      // skopeo's docker-archive holds every layer uncompressed.
      checkIndex(b, index.json("test"), archived, List.of("tar-index", "tar-index", "tar-index", "tar-index"));
      assertThat(index.json("test").path("annotations").path(ImageFormat.SOURCE_IMAGE).asText())
          .isEqualTo(archived.configDigest); // no manifest in an archive: the image ID
    }
  }

  /**
   * The index has one image manifest (amd64) and the blobs manifest (unknown/unknown); the
   * image manifest keeps the source config and has one annotated meta blob per source layer;
   * every blob is in the destination; each layer mounts and equals its source tar.
   */
  static void checkIndex(BlobBackend b, JsonNode index, TestImage image, List<String> layouts)
      throws Exception {
    checkIndex(b, index, image, layouts, false);
  }

  /** {@code overlay}: also mount the layers as one overlay, as a snapshotter would. */
  static void checkIndex(BlobBackend b, JsonNode index, TestImage image, List<String> layouts,
      boolean overlay) throws Exception {
    assertThat(index.path("mediaType").asText()).isEqualTo(Manifest.OCI_INDEX);
    JsonNode entries = index.path("manifests");
    assertThat(entries.size()).isEqualTo(2);
    assertThat(entries.path(0).path("platform").path("os").asText()).isEqualTo("linux");
    assertThat(entries.path(0).path("platform").path("architecture").asText()).isEqualTo("amd64");
    assertThat(entries.path(1).path("platform").path("os").asText()).isEqualTo("unknown");
    assertThat(entries.path(1).path("artifactType").asText()).isEqualTo(ImageFormat.BLOBS_ARTIFACT_TYPE);

    Manifest imageManifest = b.manifest(entries.path(0).path("digest").asText());
    JsonNode m = imageManifest.json("test");
    assertThat(m.path("config").path("digest").asText()).isEqualTo(image.configDigest);
    assertThat(b.size(image.configDigest)).isEqualTo(m.path("config").path("size").asLong());
    JsonNode layers = m.path("layers");
    assertThat(layers.size()).isEqualTo(image.tars.size());

    JsonNode blobs = b.manifest(entries.path(1).path("digest").asText()).json("test");
    List<String> listed = new ArrayList<>();
    blobs.path("layers").forEach(l -> listed.add(l.path("digest").asText()));
    assertThat(b.size(blobs.path("config").path("digest").asText())).isEqualTo(2);

    List<Descriptor> descriptors = ImageManifest.parse(imageManifest).layers();
    List<ConvertedLayer> converted = new ArrayList<>();
    for (int i = 0; i < layers.size(); i++) {
      JsonNode l = layers.get(i);
      ConvertedLayer layer = ConvertedLayer.fromDescriptor(descriptors.get(i));
      assertThat(layer.layout().cliName()).isEqualTo(layouts.get(i));
      assertThat(layer.sourceDiffId()).isEqualTo(image.diffIds.get(i));
      assertThat(l.path("annotations").path("containerd.io/snapshot/lazypull.fsid").asText())
          .isEqualTo(layer.fsid());
      assertThat(layer.dataBlobs()).hasSize(1);
      String data = layer.dataBlobs().get(0).digest();
      assertThat(listed).contains(data);
      if (layer.layout().cliName().equals("tar-index")) {
        assertThat(data).isEqualTo(image.diffIds.get(i)); // the uncompressed tar itself
      } else if (i == 3) {
        assertThat(data).as("no file data: the empty blob").isEqualTo(Digests.SHA256_PREFIX
            + Digests.sha256Hex(java.nio.ByteBuffer.allocate(0)));
      }
      mountAndCompare(b, layer, image.tars.get(i));
      converted.add(layer);
    }
    if (overlay) {
      overlayAndCompare(b, converted, image);
    }
  }

  /**
   * Mounts every layer, then an overlay with them as lower layers (the top layer first), and
   * compares it with the layers' tars extracted in order with their whiteouts applied: the
   * whiteouts and the opaque directory work as overlayfs whiteouts.
   */
  static void overlayAndCompare(BlobBackend b, List<ConvertedLayer> layers, TestImage image)
      throws Exception {
    Path d = TestTrees.newDir("overlay-");
    List<Path> mounts = new ArrayList<>();
    Path root = Files.createDirectory(d.resolve("rootfs"));
    try {
      for (int i = 0; i < layers.size(); i++) {
        ConvertedLayer layer = layers.get(i);
        Path meta = d.resolve(i + ".meta");
        Path data = d.resolve(i + ".data");
        b.download(layer.fsid(), meta);
        b.download(layer.dataBlobs().get(0).digest(), data);
        Path mnt = Files.createDirectory(d.resolve("layer" + i));
        Mounts.mountErofs(meta, mnt, List.of(data));
        mounts.add(0, mnt);
      }
      Mounts.mount("overlay", root.toString(), "overlay", Mounts.MS_RDONLY, "lowerdir="
          + String.join(":", mounts.stream().map(Path::toString).toList()));
      mounts.add(0, root);
      Path expected = TestImage.mergedTree(image.tars, d.resolve("expected"));
      TreeDiff.assertSame(expected, root, TreeDiff.options().dirNlink(false));
      assertThat(root.resolve("etc/motd")).hasContent("layer 3");
      assertThat(root.resolve("usr/share/doc/gzip")).doesNotExist();
      assertThat(root.resolve("usr/share/doc/tar/NEWS.layer2")).exists();
      assertThat(root.resolve("usr/share/doc/tar/copyright")).doesNotExist();
    } finally {
      for (Path m : mounts) {
        Mounts.umount(m, 0);
      }
    }
  }

  /** Downloads meta and data blob, mounts them (file-backed EROFS) and compares with the tar. */
  static void mountAndCompare(BlobBackend b, ConvertedLayer layer, Path tar) throws Exception {
    Path d = TestTrees.newDir("layer-");
    Path meta = d.resolve("meta");
    Path data = d.resolve("data");
    b.download(layer.fsid(), meta);
    b.download(layer.dataBlobs().get(0).digest(), data);
    Path expected = TestImage.expectedTree(tar, d.resolve("expected"));
    Path mnt = Files.createDirectory(d.resolve("mnt"));
    Mounts.mountErofs(meta, mnt, List.of(data));
    try {
      TreeDiff.assertSame(expected, mnt, TreeDiff.options());
    } finally {
      Mounts.umount(mnt, 0);
    }
  }

  /** Every file and directory under {@code root} with its mtime (ns): what a write would change. */
  static Map<String, Long> snapshot(Path root) throws Exception {
    Map<String, Long> m = new java.util.TreeMap<>();
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.toList()) {
        m.put(root.relativize(p).toString(), Files.getLastModifiedTime(p).to(TimeUnit.NANOSECONDS));
      }
    }
    return m;
  }

  static String last(String out) {
    return out.strip().lines().reduce((a, b) -> b).orElse("");
  }

  // ---- platforms ----

  @Test
  void anIndex_convertsThePlatformAsked_orAll() throws Exception {
    // Two platforms sharing the layers: amd64 (the source manifest) and arm64/v8 (another config).
    Path multi = dir.resolve("multi");
    TestTrees.run(List.of("cp", "-a", image.layout.toString(), multi.toString()));
    JsonNode amd64 = TestImage.JSON.readTree(multi.resolve("blobs/sha256").resolve(Digests.normalize(image.manifestDigest)).toFile());
    JsonNode config = TestImage.JSON.readTree(multi.resolve("blobs/sha256").resolve(Digests.normalize(image.configDigest)).toFile());
    ((ObjectNode) config).put("architecture", "arm64").put("variant", "v8");
    TestImage t = new TestImage(multi);
    ObjectNode armConfig = t.config((ObjectNode) config);
    ObjectNode arm = amd64.deepCopy();
    arm.set("config", armConfig);
    ObjectNode armDesc = t.blob(TestImage.OCI_MANIFEST, TestImage.JSON.writeValueAsBytes(arm));
    armDesc.putObject("platform").put("architecture", "arm64").put("os", "linux").put("variant", "v8");
    ObjectNode amdDesc = TestImage.descriptor(TestImage.OCI_MANIFEST, Digests.normalize(image.manifestDigest),
        Files.size(multi.resolve("blobs/sha256").resolve(Digests.normalize(image.manifestDigest))));
    amdDesc.putObject("platform").put("architecture", "amd64").put("os", "linux");
    ObjectNode idx = TestImage.JSON.createObjectNode();
    idx.put("schemaVersion", 2);
    idx.put("mediaType", Manifest.OCI_INDEX);
    idx.putArray("manifests").add(armDesc).add(amdDesc);
    ObjectNode idxDesc = t.blob(Manifest.OCI_INDEX, TestImage.JSON.writeValueAsBytes(idx));
    idxDesc.putObject("annotations").put("org.opencontainers.image.ref.name", "multi");
    ObjectNode layoutIndex = TestImage.JSON.createObjectNode();
    layoutIndex.put("schemaVersion", 2);
    layoutIndex.putArray("manifests").add(idxDesc);
    Files.write(multi.resolve("index.json"), TestImage.JSON.writeValueAsBytes(layoutIndex));

    Path store = Files.createDirectories(dir.resolve("multi-store"));
    Path work = workDir();
    Run host = convert(work, "oci:" + multi + ":multi", store.toUri().toString(), "--tag", "m/app:host");
    assertThat(host.code()).as(host.err()).isZero();
    assertThat(host.out()).startsWith("converted linux/amd64:");
    Run armRun = convert(work, "oci:" + multi + ":multi", store.toUri().toString(), "--tag", "m/app:arm",
        "--platform", "linux/arm64");
    assertThat(armRun.code()).as(armRun.err()).isZero();
    assertThat(armRun.out()).startsWith("converted linux/arm64/v8: 0 layers converted, 4 reused");
    Run all = convert(work, "oci:" + multi + ":multi", store.toUri().toString(), "--tag", "m/app:all",
        "--all-platforms");
    assertThat(all.code()).as(all.err()).isZero();
    try (BlobBackend b = Backends.open(store.toString(), BackendOptions.defaults())) {
      JsonNode index = b.manifest("m/app:all").json("test");
      assertThat(index.path("manifests").size()).isEqualTo(3);
      assertThat(index.path("manifests").path(0).path("platform").path("architecture").asText()).isEqualTo("arm64");
      assertThat(index.path("manifests").path(1).path("platform").path("architecture").asText()).isEqualTo("amd64");
    }
    Run none = convert(work, "oci:" + multi + ":multi", store.toUri().toString(), "--tag", "m/app:x",
        "--platform", "linux/s390x");
    assertThat(none.code()).isEqualTo(1);
    assertThat(none.err()).contains("no image for linux/s390x").contains("linux/arm64/v8, linux/amd64");
  }

  // ---- bad input ----

  /** A copy of the source layout whose manifest is changed by {@code edit}. */
  static Path badLayout(String name, java.util.function.Consumer<ObjectNode> edit) throws Exception {
    Path copy = dir.resolve("bad-" + name);
    TestTrees.run(List.of("cp", "-a", image.layout.toString(), copy.toString()));
    Path blobs = copy.resolve("blobs/sha256");
    ObjectNode m = (ObjectNode) TestImage.JSON.readTree(blobs.resolve(Digests.normalize(image.manifestDigest)).toFile());
    edit.accept(m);
    byte[] bytes = TestImage.JSON.writeValueAsBytes(m);
    String hex = Digests.sha256Hex(java.nio.ByteBuffer.wrap(bytes));
    Files.write(blobs.resolve(hex), bytes);
    ObjectNode d = TestImage.descriptor(TestImage.OCI_MANIFEST, hex, bytes.length);
    d.putObject("annotations").put("org.opencontainers.image.ref.name", "v1");
    ObjectNode index = TestImage.JSON.createObjectNode();
    index.put("schemaVersion", 2);
    index.putArray("manifests").add(d);
    Files.write(copy.resolve("index.json"), TestImage.JSON.writeValueAsBytes(index));
    return copy;
  }

  static void assertFails(Run r, int code, String message) {
    assertThat(r.code()).as(r.out() + r.err()).isEqualTo(code);
    assertThat(r.err()).contains(message);
    assertThat(r.err()).doesNotContain("\tat "); // no stack trace
    if (code == 1) {
      assertThat(r.err().strip().lines().count()).as(r.err()).isEqualTo(1);
    }
  }

  @Test
  void badInputs_failWithOneLine_andLeaveNoTemporaryFiles() throws Exception {
    Path work = workDir();
    Path store = Files.createDirectories(dir.resolve("bad-store"));
    String dest = store.toUri().toString();

    assertFails(convert(work, registry("src/app:nope"), registry("conv/bad")), 1, "MANIFEST_UNKNOWN");
    assertFails(convert(work, registry("src/nothing:v1"), registry("conv/bad")), 1, "HTTP 404");
    assertFails(convert(work, "ftp://example.com/x", registry("conv/bad")), 2, "unsupported source");
    assertFails(convert(work, dir.resolve("missing").toString(), registry("conv/bad")), 2, "no such image");
    assertFails(convert(work, "oci:" + image.layout + ":v1", dest), 2, "--tag NAME:TAG");
    assertFails(convert(work, "oci:" + image.layout + ":v1", registry("conv/bad@sha256:" + "0".repeat(64))), 2,
        "not a digest");

    Path counts = badLayout("counts", m -> ((com.fasterxml.jackson.databind.node.ArrayNode) m.get("layers")).remove(2));
    assertFails(convert(work, "oci:" + counts + ":v1", dest, "--tag", "b/a:1"), 1,
        "has 3 layers but its config lists 4 diff_ids");

    Path foreign = badLayout("foreign", m -> ((ObjectNode) m.get("layers").get(1))
        .put("mediaType", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
    assertFails(convert(work, "oci:" + foreign + ":v1", dest, "--tag", "b/a:1"), 1,
        "has media type application/vnd.docker.image.rootfs.foreign.diff.tar.gzip, which lazypull does not convert");

    Path noDigest = badLayout("nodigest", m -> ((ObjectNode) m.get("layers").get(0)).remove("digest"));
    assertFails(convert(work, "oci:" + noDigest + ":v1", dest, "--tag", "b/a:1"), 1,
        "layers[0].digest '' is not a sha256 digest");

    // Layer 2's bytes replaced (same name): layer 1 converts, layer 2 fails its digest.
    Path corrupt = badLayout("corrupt", m -> { });
    Path layer2 = corrupt.resolve("blobs/sha256").resolve(Digests.normalize(image.layerDigests.get(1)));
    byte[] bytes = Files.readAllBytes(layer2);
    bytes[bytes.length / 2] ^= 1;
    Files.write(layer2, bytes);
    assertFails(convert(work, "oci:" + corrupt + ":v1", dest, "--tag", "b/a:1"), 1, "sha256 mismatch for "
        + image.layerDigests.get(1));

    // A diff ID that is not the layer's: the config lies.
    Path lying = dir.resolve("bad-diffid");
    TestTrees.run(List.of("cp", "-a", image.layout.toString(), lying.toString()));
    TestImage t = new TestImage(lying);
    ObjectNode config = (ObjectNode) TestImage.JSON.readTree(lying.resolve("blobs/sha256")
        .resolve(Digests.normalize(image.configDigest)).toFile());
    ((com.fasterxml.jackson.databind.node.ArrayNode) config.path("rootfs").path("diff_ids"))
        .set(0, TestImage.JSON.getNodeFactory().textNode(image.diffIds.get(2)));
    List<ObjectNode> layers = new ArrayList<>();
    for (int i = 0; i < image.layerDigests.size(); i++) {
      layers.add(TestImage.descriptor(image.layerTypes.get(i), Digests.normalize(image.layerDigests.get(i)),
          Files.size(lying.resolve("blobs/sha256").resolve(Digests.normalize(image.layerDigests.get(i))))));
    }
    t.write(t.config(config), layers, "v1");
    assertFails(convert(work, "oci:" + lying + ":v1", dest, "--tag", "b/a:1"), 1,
        "uncompresses to " + image.diffIds.get(0) + " but the config's diff ID is " + image.diffIds.get(2));

    assertNoTempFiles(work);
    try (Stream<Path> s = Files.walk(store)) {
      assertThat(s.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList()).isEmpty();
    }
    try (BlobBackend b = Backends.open(dest, BackendOptions.defaults())) {
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> b.manifest("b/a:1"))
          .as("no tag for a failed conversion").hasMessageContaining("not found");
    }
  }

  @Test
  void help_explainsSourcesAndDestinations() {
    Run r = run("convert", "--help");
    assertThat(r.code()).isZero();
    assertThat(r.out()).contains("oci://HOST[:PORT]/REPO").contains("docker-archive:FILE")
        .contains("s3://BUCKET").contains("--all-platforms").contains("--work-dir");
  }
}
