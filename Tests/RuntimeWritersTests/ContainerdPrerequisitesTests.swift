import DesiredState
import Foundation
import RuntimeWriters
import TOMLKit
import XCTest

/// config.toml fixtures for both schema versions, with imports, comments and legacy mirrors.
final class ContainerdPrerequisitesTests: ScratchRootTestCase {
    func inspect(version: String? = "1.6.20", preferred: String? = nil) throws -> ContainerdPrerequisites {
        try ContainerdPrerequisites.inspect(configFile: "/etc/containerd/config.toml", root: root, containerdVersion: version, preferredHostsDirectory: preferred)
    }

    func status(_ p: ContainerdPrerequisites, _ name: String) -> ContainerdPrerequisites.Status? { p.checks.first { $0.name == name }?.status }

    /// Debian bookworm's stock file.
    let debianStock = """
        version = 2

        [plugins]
          [plugins."io.containerd.grpc.v1.cri"]
            [plugins."io.containerd.grpc.v1.cri".cni]
              bin_dir = "/usr/lib/cni"
              conf_dir = "/etc/cni/net.d"
          [plugins."io.containerd.internal.v1.opt"]
            path = "/var/lib/containerd/opt"

        """

    func testDebianStockNeedsConfigPathAndGetsItWithEverythingElseKept() throws {
        try write("/etc/containerd/config.toml", debianStock)
        let p = try inspect()
        XCTAssertEqual(status(p, "config_path"), .missing)
        XCTAssertEqual(status(p, "discard_unpacked_layers"), .ok)
        XCTAssertTrue(p.needsFix)
        XCTAssertEqual(p.hostsDirectory, "/etc/containerd/certs.d")
        XCTAssertEqual(p.fixes.map(\.hostPath), ["/etc/containerd/config.toml"])
        let after = p.fixes[0].after
        XCTAssertTrue(after.hasPrefix(debianStock), "every original line kept, in order")
        let table = try TOMLTable(string: after)
        XCTAssertEqual(table["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
        XCTAssertEqual(table["plugins"]?["io.containerd.grpc.v1.cri"]?["cni"]?["bin_dir"]?.string, "/usr/lib/cni")
        // The patched file passes every check.
        try write("/etc/containerd/config.toml", after)
        XCTAssertFalse(try inspect().needsFix)
    }

    func testExistingConfigPathIsUsedNotChanged() throws {
        try write("/etc/containerd/config.toml", """
            version = 2
            [plugins."io.containerd.grpc.v1.cri".registry]
              # where our hosts live
              config_path = "/etc/containerd/hosts.d"   # keep
            """)
        let p = try inspect(preferred: "/etc/containerd/certs.d")
        XCTAssertEqual(status(p, "config_path"), .ok)
        XCTAssertEqual(p.hostsDirectory, "/etc/containerd/hosts.d")
        XCTAssertEqual(p.checks.first { $0.name == "config_path" }?.line, 4)
        XCTAssertFalse(p.needsFix)
        XCTAssertEqual(p.fixes, [])
    }

    func testDiscardUnpackedLayersIsFlippedInPlaceKeepingItsComment() throws {
        try write("/etc/containerd/config.toml", """
            version = 2
            [plugins."io.containerd.grpc.v1.cri".containerd]
              snapshotter = "overlayfs"
              discard_unpacked_layers = true # saves disk
            [plugins."io.containerd.grpc.v1.cri".registry]
              config_path = "/etc/containerd/certs.d"

            """)
        let p = try inspect()
        XCTAssertEqual(status(p, "discard_unpacked_layers"), .wrong)
        XCTAssertEqual(p.checks.first { $0.name == "discard_unpacked_layers" }?.line, 4)
        XCTAssertEqual(p.fixes.count, 1)
        XCTAssertEqual(p.fixes[0].after, """
            version = 2
            [plugins."io.containerd.grpc.v1.cri".containerd]
              snapshotter = "overlayfs"
              discard_unpacked_layers = false # saves disk
            [plugins."io.containerd.grpc.v1.cri".registry]
              config_path = "/etc/containerd/certs.d"

            """)
    }

    func testVersion3Keys() throws {
        try write("/etc/containerd/config.toml", """
            version = 3
            [plugins.'io.containerd.cri.v1.images']
              discard_unpacked_layers = true
              [plugins.'io.containerd.cri.v1.images'.registry]
                config_path = ''

            """)
        let p = try inspect(version: "2.1.3")
        XCTAssertEqual(status(p, "config_path"), .missing)
        XCTAssertEqual(status(p, "discard_unpacked_layers"), .wrong)
        let table = try TOMLTable(string: p.fixes[0].after)
        let images = table["plugins"]?["io.containerd.cri.v1.images"]
        XCTAssertEqual(images?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
        XCTAssertEqual(images?["discard_unpacked_layers"]?.bool, false)
    }

    func testConfigPathListIsReportedAndItsFirstEntryUsed() throws {
        try write("/etc/containerd/config.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n")
        // 2.1+ CRI pulls go through the transfer service, which reads the list as one directory.
        let p = try inspect(version: "2.2.0")
        XCTAssertEqual(status(p, "config_path"), .wrong)
        XCTAssertEqual(p.hostsDirectory, "/etc/containerd/certs.d")
        XCTAssertEqual(try TOMLTable(string: p.fixes[0].after)["plugins"]?["io.containerd.cri.v1.images"]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
        // 2.0 pulls locally and splits the list: its first entry is used, as reported.
        let old = try inspect(version: "2.0.5")
        XCTAssertEqual(status(old, "config_path"), .warning)
        XCTAssertFalse(old.needsFix)
    }

    func testMissingFileMeansDefaults() throws {
        let old = try inspect(version: "1.6.20")
        XCTAssertFalse(old.exists)
        XCTAssertEqual(status(old, "config_path"), .missing)
        XCTAssertEqual(old.fixes.map(\.hostPath), ["/etc/containerd/config.toml"])
        XCTAssertEqual(try TOMLTable(string: old.fixes[0].after)["version"]?.int, 2)
        let new = try inspect(version: "2.2.1")
        XCTAssertEqual(status(new, "config_path"), .wrong, "2.2+ defaults config_path to a list, which transfer-service pulls read as one directory")
        XCTAssertEqual(new.hostsDirectory, "/etc/containerd/certs.d")
    }

    func testOnContainerd1AnImportThatOwnsThePluginIsPatchedNotTheMainFile() throws {
        try write("/etc/containerd/config.toml", "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/ignored\"\n")
        try write("/etc/containerd/conf.d/10-cri.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n")
        let v1 = try inspect(version: "1.7.27")
        // 1.x: the import replaces the whole CRI table, so the main file's config_path is gone.
        XCTAssertEqual(status(v1, "config_path"), .missing)
        XCTAssertEqual(v1.fixes.map(\.hostPath), ["/etc/containerd/conf.d/10-cri.toml"])
        // 2.x merges: the main file's value stands.
        let v2 = try inspect(version: "2.0.5")
        XCTAssertEqual(status(v2, "config_path"), .ok)
        XCTAssertEqual(v2.hostsDirectory, "/ignored")
    }

    func testLegacyMirrorsAreMigratedAndRemoved() throws {
        try write("/etc/containerd/config.toml", """
            version = 2
            # the CRI plugin
            [plugins."io.containerd.grpc.v1.cri".registry]
              [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
                  endpoint = [
                    "https://mirror.corp.example:5000",
                    "https://registry-1.docker.io",
                  ]
              [plugins."io.containerd.grpc.v1.cri".registry.configs."mirror.corp.example:5000".tls]
                ca_file = "/etc/pki/corp.pem"
              [plugins."io.containerd.grpc.v1.cri".registry.configs."mirror.corp.example:5000".auth]
                username = "puller"
            [plugins."io.containerd.internal.v1.opt"]
              path = "/var/lib/containerd/opt"

            """)
        let p = try inspect()
        XCTAssertEqual(status(p, "legacy_registry_mirrors"), .wrong)
        XCTAssertEqual(status(p, "legacy_registry_configs_tls"), .wrong)
        XCTAssertEqual(status(p, "legacy_registry_configs_auth"), .warning)
        XCTAssertEqual(p.legacyMirrors.map(\.host).sorted(), ["docker.io", "mirror.corp.example:5000"])
        XCTAssertEqual(p.legacyMirrors.first { $0.host == "docker.io" }?.endpoints, ["https://mirror.corp.example:5000", "https://registry-1.docker.io"])
        XCTAssertEqual(p.legacyMirrors.first { $0.host == "docker.io" }?.location.line, 4)

        let after = p.fixes[0].after
        let table = try TOMLTable(string: after)
        let registry = table["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]
        XCTAssertNil(registry?["mirrors"])
        XCTAssertNil(registry?["configs"]?["mirror.corp.example:5000"]?["tls"])
        XCTAssertEqual(registry?["configs"]?["mirror.corp.example:5000"]?["auth"]?["username"]?.string, "puller")
        XCTAssertEqual(registry?["config_path"]?.string, "/etc/containerd/certs.d")
        XCTAssertEqual(table["plugins"]?["io.containerd.internal.v1.opt"]?["path"]?.string, "/var/lib/containerd/opt")
        XCTAssertTrue(after.contains("# the CRI plugin"))

        // Migrated into the model: docker.io keeps its mirror (and the CA from configs).
        let loaded = DesiredStateLoader.load(paths: [], root: root, settings: AgentSettings(), legacy: p.legacyMirrors)
        XCTAssertTrue(loaded.isValid, "\(loaded.diagnostics.errors)")
        let docker = try XCTUnwrap(loaded.model.registries.first { $0.source == .host("docker.io") })
        XCTAssertEqual(docker.mirrors.map(\.displayURL), ["https://mirror.corp.example:5000"])
        XCTAssertEqual(docker.mirrors[0].tls.caFiles, ["/etc/pki/corp.pem"])
    }

    /// The real containerd (Debian's 1.6) reads the patched stock file as intended.
    func testContainerdConfigDumpAgreesWithThePatch() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/containerd") else {
            return XCTFail("containerd is required for this test: make test installs it")
        }
        try write("/etc/containerd/config.toml", debianStock.replacingOccurrences(of: "[plugins]", with: "[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    discard_unpacked_layers = true"))
        let p = try inspect()
        let patched = root.path("/patched.toml")
        try p.fixes[0].after.write(toFile: patched, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/containerd")
        process.arguments = ["--config", patched, "config", "dump"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertTrue(output.contains("config_path = \"/etc/containerd/certs.d\""), output)
        XCTAssertTrue(output.contains("discard_unpacked_layers = false"), output)
        XCTAssertFalse(output.contains("discard_unpacked_layers = true"))
    }
}
