import DesiredState
import Diagnostics
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

/// Issue 15: registry credentials as `registry.configs."<host>".auth` where the CRI plugin reads
/// them, in agent-marked blocks; checked, replaced, removed; the file kept 0600.
final class ContainerdCredentialsTests: ScratchRootTestCase {
    let stock = """
        version = 2

        [plugins]
          [plugins."io.containerd.grpc.v1.cri"]
            [plugins."io.containerd.grpc.v1.cri".cni]
              bin_dir = "/usr/lib/cni"
          [plugins."io.containerd.grpc.v1.cri".registry]
            config_path = "/etc/containerd/certs.d"

        """
    let at = SourceLocation(file: "/etc/mirror-agent/mirrors.yaml", line: 3, column: 5)

    func creds(_ host: String, _ user: String = "robot", _ password: String = "pw\"with\\quotes") -> HostCredentials {
        HostCredentials(host: host, username: user, password: Secret(password), location: at)
    }

    func inspect(_ credentials: [HostCredentials], version: String = "1.6.20") throws -> ContainerdPrerequisites {
        try ContainerdPrerequisites.inspect(
            configFile: "/etc/containerd/config.toml", root: root, containerdVersion: version, preferredHostsDirectory: nil, credentials: credentials)
    }

    /// Applies the fixes to the scratch root as the agent would (content and mode).
    func applyFixes(_ p: ContainerdPrerequisites) throws {
        for fix in p.fixes {
            try write(fix.hostPath, fix.after)
            if let mode = fix.mode { chmod(root.path(fix.hostPath), mode_t(mode)) }
        }
    }

    func testWrittenUnderThePluginTableOfEachSchemaAndReadBackAsTOML() throws {
        for (version, schema, plugin) in [("1.6.20", 2, "io.containerd.grpc.v1.cri"), ("2.1.9", 3, "io.containerd.cri.v1.images")] {
            try write("/etc/containerd/config.toml", schema == 2 ? stock : "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/containerd/certs.d'\n")
            chmod(root.path("/etc/containerd/config.toml"), 0o644)
            let p = try inspect([creds("docker.io"), creds("mirror.example:5000", "u2", "p2")], version: version)
            XCTAssertTrue(p.needsFix)
            XCTAssertEqual(p.checks.filter { $0.name == "registry_credentials" }.map(\.status), [.missing, .missing])
            XCTAssertEqual(p.fixes.count, 1)
            let fix = p.fixes[0]
            XCTAssertEqual(fix.mode, 0o600)
            XCTAssertTrue(fix.needsRestart)
            // The messages name hosts, never values.
            XCTAssertFalse((p.checks.map(\.message) + fix.changes).joined().contains("quotes"))
            let table = try TOMLTable(string: fix.after)
            let configs = table["plugins"]?[plugin]?["registry"]?["configs"]?.table
            // docker.io's images come from registry-1.docker.io: that is the host containerd asks for.
            XCTAssertEqual(configs?["registry-1.docker.io"]?["auth"]?["username"]?.string, "robot")
            XCTAssertEqual(configs?["registry-1.docker.io"]?["auth"]?["password"]?.string, "pw\"with\\quotes")
            XCTAssertEqual(configs?["mirror.example:5000"]?["auth"]?["password"]?.string, "p2")
            XCTAssertNil(configs?["docker.io"])
            // Everything else is kept.
            XCTAssertEqual(table["plugins"]?[plugin]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")

            // Applied: in place, and nothing more to do (no restart either).
            try applyFixes(p)
            let again = try inspect([creds("docker.io"), creds("mirror.example:5000", "u2", "p2")], version: version)
            XCTAssertFalse(again.needsFix, "\(again.checks)")
            XCTAssertEqual(again.checks.filter { $0.name == "registry_credentials" }.map(\.status), [.ok, .ok])
        }
    }

    func testRotationReplacesRemovalRemovesAndTheAdminsAuthIsLeftAlone() throws {
        try write("/etc/containerd/config.toml", stock + """
              [plugins."io.containerd.grpc.v1.cri".registry.configs."admin.example".auth]
                username = "admin"
                password = "admins-own"

            """)
        try applyFixes(try inspect([creds("a.example", "u", "old"), creds("b.example")]))

        // A rotated password: exactly that block is replaced; a restart is due.
        let rotated = try inspect([creds("a.example", "u", "new"), creds("b.example")])
        XCTAssertEqual(rotated.checks.filter { $0.name == "registry_credentials" }.map(\.status), [.wrong, .ok])
        XCTAssertTrue(rotated.fixes[0].needsRestart)
        try applyFixes(rotated)
        var table = try TOMLTable(string: try String(contentsOfFile: root.path("/etc/containerd/config.toml"), encoding: .utf8))
        var configs = table["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]?["configs"]?.table
        XCTAssertEqual(configs?["a.example"]?["auth"]?["password"]?.string, "new")
        XCTAssertEqual(configs?["b.example"]?["auth"]?["username"]?.string, "robot")

        // b.example's credentials leave the desired state: the agent's block goes, the admin's stays.
        let removed = try inspect([creds("a.example", "u", "new")])
        XCTAssertEqual(removed.checks.first { $0.message.contains("b.example") }?.status, .wrong)
        try applyFixes(removed)
        let text = try String(contentsOfFile: root.path("/etc/containerd/config.toml"), encoding: .utf8)
        table = try TOMLTable(string: text)
        configs = table["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]?["configs"]?.table
        XCTAssertNil(configs?["b.example"]?["auth"])
        XCTAssertEqual(configs?["a.example"]?["auth"]?["password"]?.string, "new")
        XCTAssertEqual(configs?["admin.example"]?["auth"]?["password"]?.string, "admins-own")
        XCTAssertEqual(text.components(separatedBy: ContainerdPrerequisites.credentialsMarker).count - 1, 1)
        XCTAssertFalse(try inspect([creds("a.example", "u", "new")]).needsFix)
        // The admin's auth is reported, not touched.
        XCTAssertEqual(try inspect([creds("a.example", "u", "new")]).checks.first { $0.name == "legacy_registry_configs_auth" }?.message.contains("admin.example"), true)
    }

    func testAFileHoldingCredentialsThatBecameReadableIsFixedWithoutARestart() throws {
        try write("/etc/containerd/config.toml", stock)
        try applyFixes(try inspect([creds("a.example")]))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: root.path("/etc/containerd/config.toml"))[.posixPermissions] as? Int, 0o600)
        chmod(root.path("/etc/containerd/config.toml"), 0o644)
        let p = try inspect([creds("a.example")])
        XCTAssertEqual(p.checks.first { $0.name == "registry_credentials_mode" }?.status, .wrong)
        XCTAssertEqual(p.fixes.map(\.mode), [0o600])
        XCTAssertFalse(p.fixes[0].needsRestart)
    }

    func testOn1xTheFileOwningThePluginGetsThem() throws {
        // containerd 1.x replaces a whole plugin table from an import: the import that owns the
        // CRI plugin is where its registry.configs are read.
        try write("/etc/containerd/config.toml", "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n")
        try write("/etc/containerd/conf.d/cri.toml", "version = 2\n" + stock.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n")
        let p = try inspect([creds("a.example")])
        XCTAssertEqual(p.fixes.map(\.hostPath), ["/etc/containerd/conf.d/cri.toml"])
    }
}
