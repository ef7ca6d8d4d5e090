package io.lazypull.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.lazypull.erofs.BlobIndex;
import io.lazypull.erofs.ErofsImage;
import io.lazypull.erofs.format.Erofs;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code lazypull inspect}: what an image holds, read with our own reader. */
@Command(name = "inspect", mixinStandardHelpOptions = true, sortOptions = false,
    description = {
      "Show an EROFS image: superblock, features, device table, blob index and the tree",
      "(mode, uid, gid, size, nid, path). Metadata needs only the image; with the data",
      "blobs given by --device (in device-table order) it also opens them, checks their",
      "sizes against the blob index and reports that file data is readable.",
      ""
    })
final class InspectCommand implements Callable<Integer> {
  @Option(names = "--device", paramLabel = "BLOB", description = "An extra device (data blob); repeat in order.")
  List<Path> devices = new ArrayList<>();

  @Option(names = "--json", description = "Print one JSON document instead of text.")
  boolean json;

  @Option(names = "--no-tree", description = "Leave out the tree listing.")
  boolean noTree;

  @Parameters(paramLabel = "IMAGE", description = "The image or meta blob.")
  Path imagePath;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** One entry of the tree listing. */
  private record TreeEntry(String path, ErofsImage.Node node, String target, Map<String, byte[]> xattrs) {}

  @Override
  public Integer call() throws Exception {
    try (ImageArgs args = new ImageArgs(imagePath, devices)) {
      List<TreeEntry> tree = new ArrayList<>();
      if (!noTree) {
        ErofsImage img = args.image;
        img.walk((path, n) -> tree.add(new TreeEntry(path, n,
            n.isSymlink() ? new String(img.readlink(n), StandardCharsets.UTF_8) : null, img.xattrs(n))));
      }
      Map<String, Object> doc = describe(args, tree);
      PrintWriter out = spec.commandLine().getOut();
      if (json) {
        out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(doc));
      } else {
        printText(out, doc, tree);
      }
      out.flush();
    }
    return 0;
  }

  /** Everything but the tree as nested maps (the JSON document; the text is printed from it). */
  private Map<String, Object> describe(ImageArgs args, List<TreeEntry> tree) throws Exception {
    ErofsImage img = args.image;
    ErofsImage.Info info = img.info();
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("image", imagePath.toString());
    doc.put("fileBytes", Files.size(imagePath));
    doc.put("erofsBytes", img.erofsBytes());
    Map<String, Object> sb = new LinkedHashMap<>();
    sb.put("blockSize", info.blockSize());
    sb.put("blocks", info.blocks());
    sb.put("inodes", info.inodeCount());
    sb.put("rootNid", info.rootNid());
    sb.put("buildTime", Instant.ofEpochSecond(info.buildTime(), info.buildTimeNsec()).toString());
    sb.put("metaBlkaddr", info.metaBlkaddr());
    sb.put("xattrBlkaddr", info.xattrBlkaddr());
    sb.put("uuid", HexFormat.of().formatHex(info.uuid()));
    sb.put("volumeName", info.volumeName());
    sb.put("checksum", String.format("0x%08x", info.checksum()));
    sb.put("featureCompat", String.format("0x%x", info.featureCompat()));
    sb.put("featureIncompat", String.format("0x%x", info.featureIncompat()));
    sb.put("features", info.featureNames());
    doc.put("superblock", sb);
    List<Map<String, Object>> devs = new ArrayList<>();
    for (ErofsImage.Device d : img.devices()) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("id", d.id());
      m.put("tag", d.tag());
      m.put("blocks", d.blocks());
      m.put("uniaddr", d.uniaddr());
      if (d.id() <= devices.size()) {
        m.put("path", devices.get(d.id() - 1).toString());
      }
      devs.add(m);
    }
    doc.put("devices", devs);
    doc.put("deviceData", img.hasDeviceData() ? "readable" : args.missingDevicesHint());
    Optional<List<BlobIndex.Blob>> index = BlobIndex.read(args.meta);
    List<Map<String, Object>> blobs = new ArrayList<>();
    for (BlobIndex.Blob b : index.orElse(List.of())) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("deviceId", b.deviceId());
      m.put("tag", b.tag());
      m.put("blobSize", b.blobSize());
      m.put("pieceSize", b.pieceSize());
      m.put("pieces", b.pieceCount());
      blobs.add(m);
    }
    doc.put("blobIndex", index.isPresent() ? blobs : null);
    if (!noTree) {
      List<Map<String, Object>> entries = new ArrayList<>();
      for (TreeEntry e : tree) {
        entries.add(jsonEntry(e));
      }
      doc.put("tree", entries);
    }
    return doc;
  }

  private static Map<String, Object> jsonEntry(TreeEntry e) {
    ErofsImage.Node n = e.node();
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("path", e.path());
    m.put("nid", n.nid());
    m.put("type", typeName(n.mode()));
    m.put("mode", String.format("%04o", n.mode() & 07777));
    m.put("uid", n.uid());
    m.put("gid", n.gid());
    m.put("size", n.size());
    m.put("nlink", n.nlink());
    m.put("mtime", n.mtimeInstant().toString());
    if (n.isDevice()) {
      m.put("rdev", n.rdevMajor() + ":" + n.rdevMinor());
    }
    if (e.target() != null) {
      m.put("target", e.target());
    }
    if (!e.xattrs().isEmpty()) {
      Map<String, String> xs = new LinkedHashMap<>(); // values in base64: they are bytes
      e.xattrs().forEach((k, v) -> xs.put(k, Base64.getEncoder().encodeToString(v)));
      m.put("xattrs", xs);
    }
    return m;
  }

  static String typeName(int mode) {
    return switch (mode & Erofs.S_IFMT) {
      case Erofs.S_IFREG -> "file";
      case Erofs.S_IFDIR -> "dir";
      case Erofs.S_IFLNK -> "symlink";
      case Erofs.S_IFCHR -> "char";
      case Erofs.S_IFBLK -> "block";
      case Erofs.S_IFIFO -> "fifo";
      case Erofs.S_IFSOCK -> "socket";
      default -> "unknown";
    };
  }

  /** ls-style mode string: drwxr-xr-x, with s/t for setuid, setgid, sticky. */
  static String modeString(int mode) {
    char type = switch (mode & Erofs.S_IFMT) {
      case Erofs.S_IFDIR -> 'd';
      case Erofs.S_IFLNK -> 'l';
      case Erofs.S_IFCHR -> 'c';
      case Erofs.S_IFBLK -> 'b';
      case Erofs.S_IFIFO -> 'p';
      case Erofs.S_IFSOCK -> 's';
      default -> '-';
    };
    StringBuilder b = new StringBuilder().append(type);
    String rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++) {
      b.append((mode & (0400 >> i)) != 0 ? rwx.charAt(i) : '-');
    }
    if ((mode & 04000) != 0) {
      b.setCharAt(3, (mode & 0100) != 0 ? 's' : 'S');
    }
    if ((mode & 02000) != 0) {
      b.setCharAt(6, (mode & 010) != 0 ? 's' : 'S');
    }
    if ((mode & 01000) != 0) {
      b.setCharAt(9, (mode & 01) != 0 ? 't' : 'T');
    }
    return b.toString();
  }

  @SuppressWarnings("unchecked")
  private void printText(PrintWriter out, Map<String, Object> doc, List<TreeEntry> tree) {
    Map<String, Object> sb = (Map<String, Object>) doc.get("superblock");
    out.printf("image:        %s (%s bytes, EROFS %s)%n", doc.get("image"), doc.get("fileBytes"), doc.get("erofsBytes"));
    out.printf("block size:   %s%n", sb.get("blockSize"));
    out.printf("blocks:       %s%n", sb.get("blocks"));
    out.printf("inodes:       %s%n", sb.get("inodes"));
    out.printf("root nid:     %s%n", sb.get("rootNid"));
    out.printf("build time:   %s%n", sb.get("buildTime"));
    out.printf("uuid:         %s%n", sb.get("uuid"));
    out.printf("checksum:     %s%n", sb.get("checksum"));
    out.printf("features:     %s (compat %s, incompat %s)%n", String.join(" ", (List<String>) sb.get("features")),
        sb.get("featureCompat"), sb.get("featureIncompat"));
    List<Map<String, Object>> devs = (List<Map<String, Object>>) doc.get("devices");
    out.printf("devices:      %d%n", devs.size());
    for (Map<String, Object> d : devs) {
      out.printf("  #%s tag %s, %s blocks, uniaddr %s%s%n", d.get("id"), d.get("tag").toString().isEmpty() ? "(none)" : d.get("tag"),
          d.get("blocks"), d.get("uniaddr"), d.containsKey("path") ? ", " + d.get("path") : "");
    }
    if (!devs.isEmpty()) {
      out.printf("device data:  %s%n", doc.get("deviceData"));
    }
    List<Map<String, Object>> blobs = (List<Map<String, Object>>) doc.get("blobIndex");
    if (blobs == null) {
      out.println("blob index:   none");
    } else {
      out.printf("blob index:   %d blob(s)%n", blobs.size());
      for (Map<String, Object> b : blobs) {
        out.printf("  #%s %s bytes, %s pieces of %s bytes%n", b.get("deviceId"), b.get("blobSize"),
            b.get("pieces"), b.get("pieceSize"));
      }
    }
    if (noTree) {
      return;
    }
    out.println("tree:");
    out.printf("%-10s %8s %8s %12s %10s  %s%n", "MODE", "UID", "GID", "SIZE", "NID", "PATH");
    for (TreeEntry e : tree) {
      ErofsImage.Node n = e.node();
      String size = n.isDevice() ? n.rdevMajor() + ":" + n.rdevMinor() : Long.toString(n.size());
      out.printf("%-10s %8d %8d %12s %10d  %s%s%n", modeString(n.mode()), n.uid(), n.gid(), size,
          n.nid(), e.path(), e.target() != null ? " -> " + e.target() : "");
    }
  }
}
