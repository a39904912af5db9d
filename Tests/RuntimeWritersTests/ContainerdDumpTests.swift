import Diagnostics
import Foundation
import RuntimeWriters
import TOMLKit
import XCTest

/// `containerd config dump` as the three Debian containerd packages really print it (captured
/// from the e2e roots: bookworm 1.6.20, trixie 1.7.24, sid 2.1.9; the stock config.toml, and that
/// file with the agent's config_path added), read with the TOML parser.
final class ContainerdDumpTests: ScratchRootTestCase {
    static let fixtures = repositoryRoot + "/Tests/RuntimeWritersTests/Fixtures/containerd-dumps"

    func fixture(_ name: String) throws -> String {
        try String(contentsOfFile: Self.fixtures + "/" + name, encoding: .utf8)
    }

    func dump(_ name: String) throws -> ContainerdConfigDump { try ContainerdConfigDump.parse(try fixture(name)) }

    func testSid219PatchedDumpShowsConfigPathAsALiteralString() throws {
        let text = try fixture("sid-2.1.9-patched-dump.toml")
        // What the agent used to look for is not in 2.x's output (literal strings, '...').
        XCTAssertFalse(text.contains("config_path = \"/etc/containerd/certs.d\""))
        let d = try ContainerdConfigDump.parse(text)
        XCTAssertEqual(d.version, 3)
        XCTAssertEqual(d.configPath, "/etc/containerd/certs.d", "the version-2 key was migrated to io.containerd.cri.v1.images")
        XCTAssertFalse(d.useLocalImagePull)
        XCTAssertEqual(d.transferConfigPath, "")
        XCTAssertNil(d.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion("2.1.9")))
        XCTAssertNotNil(d.problem(hostsDirectory: "/etc/mirrors.d", containerd: ContainerdVersion("2.1.9")))
    }

    func testStockDumpsShowNoConfigPath() throws {
        for (name, version) in [("bookworm-1.6.20", "1.6.20"), ("trixie-1.7.24", "1.7.24"), ("sid-2.1.9", "2.1.9")] {
            let d = try dump("\(name)-stock-dump.toml")
            XCTAssertEqual(d.configPath, "", name)
            XCTAssertEqual(d.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion(version)), "containerd config dump shows no CRI registry config_path", name)
        }
    }

    func testContainerd1PatchedDumpsAreSchema2AndAccepted() throws {
        for (name, version) in [("bookworm-1.6.20", "1.6.20"), ("trixie-1.7.24", "1.7.24")] {
            let d = try dump("\(name)-patched-dump.toml")
            XCTAssertEqual(d.version, 2, name)
            XCTAssertEqual(d.configPath, "/etc/containerd/certs.d", name)
            XCTAssertFalse(d.discardUnpackedLayers, name)
            XCTAssertNil(d.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion(version)), name)
        }
    }

    func testAListIsOneDirectoryToTheTransferServiceButNotToALocalPull() throws {
        let list = try fixture("sid-2.1.9-patched-dump.toml")
            .replacingOccurrences(of: "config_path = '/etc/containerd/certs.d'", with: "config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'")
        let d = try ContainerdConfigDump.parse(list)
        XCTAssertNotNil(d.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion("2.1.9")))
        XCTAssertNil(d.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion("2.0.5")), "2.0 pulls locally and splits the list")
        let local = try ContainerdConfigDump.parse(list.replacingOccurrences(of: "use_local_image_pull = false", with: "use_local_image_pull = true"))
        XCTAssertTrue(local.useLocalImagePull)
        XCTAssertNil(local.problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion("2.1.9")))
    }

    func testDiscardAndLegacyMirrorsInADumpAreProblems() throws {
        let text = try fixture("sid-2.1.9-patched-dump.toml")
            .replacingOccurrences(of: "discard_unpacked_layers = false", with: "discard_unpacked_layers = true")
        XCTAssertEqual(try ContainerdConfigDump.parse(text).problem(hostsDirectory: "/etc/containerd/certs.d", containerd: ContainerdVersion("2.1.9")), "containerd config dump shows discard_unpacked_layers = true")
        let mirrors = try fixture("trixie-1.7.24-patched-dump.toml") + "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"http://127.0.0.1:5000\"]\n"
        XCTAssertEqual(try ContainerdConfigDump.parse(mirrors).legacyMirrorHosts, ["docker.io"])
    }

    func testNotTOMLIsAnErrorWithAPosition() {
        XCTAssertThrowsError(try ContainerdConfigDump.parse("version = 3\n[plugins\n")) { error in
            XCTAssertTrue("\(error)".contains("containerd config dump"), "\(error)")
        }
    }

    // The stock config.toml of each suite, judged for the version that ships it.
    func inspect(_ version: String) throws -> ContainerdPrerequisites {
        try ContainerdPrerequisites.inspect(configFile: "/etc/containerd/config.toml", root: root, containerdVersion: version, preferredHostsDirectory: nil)
    }

    func testSidStockConfigGetsConfigPathInTheVersion2TableItMigrates() throws {
        try write("/etc/containerd/config.toml", try fixture("sid-2.1.9-stock-config.toml"))
        let p = try inspect("2.1.9")
        XCTAssertEqual(p.schemaVersion, 2)
        XCTAssertTrue(p.criPullsThroughTransferService)
        XCTAssertEqual(p.checks.first { $0.name == "config_path" }?.status, .missing)
        let after = try TOMLTable(string: try XCTUnwrap(p.fixes.first).after)
        XCTAssertEqual(after["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
    }

    func testContainerd22EmptyOrMissingConfigPathIsTheListAndWrongForTransferPulls() throws {
        // A version-2 file with config_path = "": 2.2 migrates it to the list.
        try write("/etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n")
        var p = try inspect("2.2.0")
        var check = p.checks.first { $0.name == "config_path" }
        XCTAssertEqual(check?.status, .wrong)
        XCTAssertTrue(check?.message.contains("empty, which containerd 2.2.0 reads as /etc/containerd/certs.d:/etc/docker/certs.d") == true, check?.message ?? "")
        XCTAssertEqual(try TOMLTable(string: try XCTUnwrap(p.fixes.first).after)["plugins"]?["io.containerd.grpc.v1.cri"]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
        // The same file on 2.1: empty means none.
        XCTAssertEqual(try inspect("2.1.9").checks.first { $0.name == "config_path" }?.status, .missing)
        // A version-3 file without the key: the 2.2 default, the list.
        try write("/etc/containerd/config.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"\n")
        p = try inspect("2.2.1")
        check = p.checks.first { $0.name == "config_path" }
        XCTAssertEqual(check?.status, .wrong)
        XCTAssertEqual(p.hostsDirectory, "/etc/containerd/certs.d")
        XCTAssertEqual(try TOMLTable(string: try XCTUnwrap(p.fixes.first).after)["plugins"]?["io.containerd.cri.v1.images"]?["registry"]?["config_path"]?.string, "/etc/containerd/certs.d")
        // With use_local_image_pull the CRI plugin splits the list itself: no fix.
        try write("/etc/containerd/config.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  use_local_image_pull = true\n")
        p = try inspect("2.2.1")
        XCTAssertFalse(p.criPullsThroughTransferService)
        XCTAssertEqual(p.checks.first { $0.name == "config_path" }?.status, .warning)
        XCTAssertFalse(p.needsFix)
    }
}
