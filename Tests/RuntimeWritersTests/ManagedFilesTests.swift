import DesiredState
import Foundation
import RuntimeWriters
import XCTest

/// Ownership, adoption, removal and no-ops against a real scratch root.
final class ManagedFilesTests: ScratchRootTestCase {
    func managed(adopt: Bool = false) -> ManagedFiles { ManagedFiles(root: root, stateDirectory: "/var/lib/mirror-agent", adopt: adopt) }

    func file(_ host: String, _ body: String) -> RenderedFile {
        RenderedFile(baseDirectory: "/etc/containerd/certs.d", relativePath: "\(host)/hosts.toml", contents: "# Managed by mirror-agent.\n" + body, runtime: .containerd)
    }

    func read(_ hostPath: String) -> String? { try? String(contentsOfFile: root.path(hostPath), encoding: .utf8) }

    func testWritesThenNoOpThenRemovesWhatDisappeared() throws {
        let a = file("a.example", "server = \"https://a.example\"\n"), b = file("b.example", "server = \"https://b.example\"\n")
        let first = managed().apply([a, b], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(first.changes.map(\.kind), [.created, .created])
        XCTAssertEqual(read(a.path), a.contents)
        let mode = try FileManager.default.attributesOfItem(atPath: root.path(a.path))[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o644)

        let manifestBefore = try FileManager.default.attributesOfItem(atPath: root.path("/var/lib/mirror-agent/manifest.json"))[.modificationDate] as? Date
        let again = managed().apply([a, b], runtimes: [.containerd], dryRun: false)
        XCTAssertFalse(again.changed)
        XCTAssertEqual(again.unchanged.count, 2)
        let manifestAfter = try FileManager.default.attributesOfItem(atPath: root.path("/var/lib/mirror-agent/manifest.json"))[.modificationDate] as? Date
        XCTAssertEqual(manifestBefore, manifestAfter, "a no-op writes nothing, the manifest included")

        let third = managed().apply([a], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(third.changes.map(\.kind), [.removed])
        XCTAssertNil(read(b.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path("/etc/containerd/certs.d/b.example")), "the directory the agent created goes too")
    }

    func testTheManifestIsReadAgainWhenItChangedOnDisk() throws {
        // The manifest this process saved is remembered with its bytes; an edit on disk (another
        // agent process, an admin, the package's purge) must be what the next load sees.
        let a = file("a.example", "server = \"https://a.example\"\n")
        _ = managed().apply([a], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(managed().loadManifest().0.files.map(\.path), [a.path])
        let path = root.path("/var/lib/mirror-agent/manifest.json")
        let edited = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "a.example", with: "z.example")
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(managed().loadManifest().0.files.map(\.path), ["/etc/containerd/certs.d/z.example/hosts.toml"])
        try "{}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(managed().loadManifest().0.files, [], "an unreadable manifest is not replaced by the remembered one")
        XCTAssertNotNil(managed().loadManifest().1)
    }

    func testAFailedWriteKeepsTheKernelsErrnoAndTheOthersAreWritten() throws {
        // A regular file where a host's directory belongs: the kernel says ENOTDIR, and the daemon's
        // backoff is chosen from that code, not from the message.
        try FileManager.default.createDirectory(atPath: root.path("/etc/containerd/certs.d"), withIntermediateDirectories: true)
        try "not a directory".write(toFile: root.path("/etc/containerd/certs.d/blocked.example"), atomically: false, encoding: .utf8)
        let ok = file("ok.example", "server = \"https://ok.example\"\n")
        let outcome = managed().apply([file("blocked.example", "x = 1\n"), ok], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(outcome.failures.count, 1, "\(outcome.failures)")
        XCTAssertEqual(outcome.failures.first.flatMap { outcome.failureCodes[$0] }, ENOTDIR, "\(outcome.failures) \(outcome.failureCodes)")
        XCTAssertEqual(read(ok.path), ok.contents)
    }

    func testOneBatchForBothRuntimesSaysWhichRuntimeFailed() throws {
        // One pass writes every runtime's files in one batch; /etc/containers is a regular file
        // here, so CRI-O's drop-in cannot be written: containerd's file still is, and the
        // failure is CRI-O's alone (containerd's config.toml fix and restart go on).
        try FileManager.default.createDirectory(atPath: root.path("/etc"), withIntermediateDirectories: true)
        try "not a directory".write(toFile: root.path("/etc/containers"), atomically: false, encoding: .utf8)
        let hosts = file("ok.example", "server = \"https://ok.example\"\n")
        let dropIn = RenderedFile(
            baseDirectory: "/etc/containers/registries.conf.d", relativePath: "99-mirror-agent.conf", contents: "# Managed by mirror-agent.\n", runtime: .crio)
        let outcome = managed().apply([hosts, dropIn], runtimes: [.containerd, .crio], dryRun: false)
        XCTAssertEqual(read(hosts.path), hosts.contents)
        XCTAssertEqual(outcome.failures.count, 1, "\(outcome.failures)")
        XCTAssertEqual(outcome.runtimeFailures.keys.sorted { $0.rawValue < $1.rawValue }, [.crio], "\(outcome.runtimeFailures)")
        XCTAssertEqual(outcome.runtimeFailures[.crio], outcome.failures)
        XCTAssertEqual(managed().loadManifest().0.files.map(\.path), [hosts.path], "only what was written is owned")
    }

    func testForeignFileIsLeftAloneUnlessAdopted() throws {
        let target = root.path("/etc/containerd/certs.d/docker.io/hosts.toml")
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "server = \"https://hand-written.example\"\n".write(toFile: target, atomically: true, encoding: .utf8)
        let ours = file("docker.io", "server = \"https://registry-1.docker.io\"\n")

        let refused = managed().apply([ours], runtimes: [.containerd], dryRun: false)
        XCTAssertFalse(refused.changed)
        XCTAssertTrue(refused.warnings[0].message.contains("was not written by mirror-agent"))
        XCTAssertEqual(read(ours.path), "server = \"https://hand-written.example\"\n")

        let adopted = managed(adopt: true).apply([ours], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(adopted.changes.map(\.kind), [.adopted])
        XCTAssertEqual(read(ours.path), ours.contents)
        let backup = try XCTUnwrap(adopted.changes[0].backup)
        XCTAssertEqual(read(backup), "server = \"https://hand-written.example\"\n")
    }

    func testDryRunWritesNothing() {
        let outcome = managed().apply([file("a.example", "x = 1\n")], runtimes: [.containerd], dryRun: true)
        XCTAssertEqual(outcome.changes.map(\.kind), [.created])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path("/etc")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path("/var")))
    }

    func testPlantedSymlinksAreNeverFollowed() throws {
        let outside = scratch + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root.path("/etc/containerd/certs.d"), withIntermediateDirectories: true)
        // A symlinked host directory, and a symlink at a file's own place.
        try FileManager.default.createSymbolicLink(atPath: root.path("/etc/containerd/certs.d/evil.example"), withDestinationPath: outside)
        try FileManager.default.createDirectory(atPath: root.path("/etc/containerd/certs.d/link.example"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.path("/etc/containerd/certs.d/link.example/hosts.toml"), withDestinationPath: outside + "/target")

        let outcome = managed(adopt: true).apply([file("evil.example", "a = 1\n"), file("link.example", "b = 1\n")], runtimes: [.containerd], dryRun: false)
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing was written through a link")
        XCTAssertTrue(outcome.failures.contains { $0.contains("evil.example") && $0.contains("symlink") }, "\(outcome.failures)")
        XCTAssertTrue(outcome.warnings.contains { $0.message.contains("link.example/hosts.toml is a symlink") }, "\(outcome.warnings)")
        XCTAssertFalse(outcome.changed)
    }

    func testOnlyTheRuntimesInPlayLoseFiles() {
        let a = file("a.example", "x = 1\n")
        _ = managed().apply([a], runtimes: [.containerd], dryRun: false)
        let outcome = managed().apply([], runtimes: [.crio], dryRun: false)
        XCTAssertFalse(outcome.changed)
        XCTAssertNotNil(read(a.path))
    }

    func testStaleTemporaryFilesAreCleanedOnTheNextWrite() throws {
        let directory = root.path("/etc/containerd/certs.d/a.example")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A temporary file left by a killed writer (a pid that cannot be alive).
        try "half".write(toFile: directory + "/.mirror-agent-tmp-999999999-1-hosts.toml", atomically: false, encoding: .utf8)
        _ = managed().apply([file("a.example", "x = 1\n")], runtimes: [.containerd], dryRun: false)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["hosts.toml"])
    }

    /// Backups are filed under the UTC time as `yyyyMMdd'T'HHmmss'Z'` (strftime, no Foundation):
    /// the same text Foundation's formatter gives for that second.
    func testBackupStampIsTheUTCSecond() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let before = formatter.string(from: Date())
        let stamp = ManagedFiles.backupStamp()
        let after = formatter.string(from: Date())
        XCTAssertTrue(stamp == before || stamp == after, "\(stamp) is neither \(before) nor \(after)")
    }
}
