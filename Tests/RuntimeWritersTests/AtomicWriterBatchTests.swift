import DesiredState
import Foundation
import RuntimeWriters
import XCTest

/// The batched writer: many files in one durability step, each still all-or-nothing.
final class AtomicWriterBatchTests: ScratchRootTestCase {
    func testABatchLargerThanOneStepWritesEveryFileWithItsModeAndCreatedDirectories() throws {
        // More files than one durability step holds (256), in new nested directories, one at the base.
        var writes = (0..<600).map { i in
            AtomicWriter.Write(Array("server = \"https://m\(i).example\"\n".utf8), base: "/etc/containerd/certs.d", relative: "r\(i).example/sub/hosts.toml", mode: i % 2 == 0 ? 0o644 : 0o600)
        }
        writes.append(AtomicWriter.Write(Array("top\n".utf8), base: "/etc/containerd/certs.d", relative: "top.conf", mode: 0o644))
        let results = AtomicWriter(root: root).writeAll(writes)
        XCTAssertEqual(results.count, writes.count)
        for (i, result) in results.enumerated().dropLast() {
            XCTAssertEqual(try result.get(), ["r\(i).example", "r\(i).example/sub"], "file \(i) reports the directories it created")
            let path = root.path("/etc/containerd/certs.d/r\(i).example/sub/hosts.toml")
            XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "server = \"https://m\(i).example\"\n")
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, i % 2 == 0 ? 0o644 : 0o600)
        }
        XCTAssertEqual(try results.last!.get(), [])
        let left = try FileManager.default.subpathsOfDirectory(atPath: root.path("/etc/containerd/certs.d")).filter { $0.contains(".mirror-agent-tmp-") }
        XCTAssertEqual(left, [], "no temporary file survives a batch")
    }

    func testOneBadFileFailsAloneAndLeavesNoTemporary() throws {
        try checkOneBadFileFailsAlone(padding: 0)
    }

    /// The same with more files than ``AtomicWriter.fsyncLimit``: the syncfs path (its renames
    /// go through the directories still open; reopening past 256 is covered by test_durability).
    func testOneBadFileFailsAloneInALargeWrite() throws {
        try checkOneBadFileFailsAlone(padding: 40)
    }

    private func checkOneBadFileFailsAlone(padding: Int) throws {
        let outside = scratch + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root.path("/etc/containerd/certs.d"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.path("/etc/containerd/certs.d/evil.example"), withDestinationPath: outside)
        // A directory at a file's own place: the rename fails after the temporary was synced.
        try FileManager.default.createDirectory(atPath: root.path("/etc/containerd/certs.d/dir.example/hosts.toml/x"), withIntermediateDirectories: true)
        let writes = (["a.example", "evil.example", "dir.example", "b.example"] + (0..<padding).map { "pad\($0).example" }).map {
            AtomicWriter.Write(Array("x = 1\n".utf8), base: "/etc/containerd/certs.d", relative: "\($0)/hosts.toml", mode: 0o644)
        }
        let results = AtomicWriter(root: root).writeAll(writes)
        for i in 4..<writes.count { XCTAssertNoThrow(try results[i].get()) }
        XCTAssertNoThrow(try results[0].get())
        XCTAssertThrowsError(try results[1].get()) { XCTAssertTrue("\($0)".contains("symlink"), "\($0)") }
        XCTAssertThrowsError(try results[2].get()) { XCTAssertTrue("\($0)".contains("cannot rename into place"), "\($0)") }
        XCTAssertNoThrow(try results[3].get())
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.path("/etc/containerd/certs.d/b.example/hosts.toml")))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outside), [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path("/etc/containerd/certs.d/dir.example")), ["hosts.toml"], "the failed file's temporary is removed")
    }

    func testStaleTemporariesOfADeadWriterGoInEveryDirectoryOfTheBatch() throws {
        try checkStaleTemporariesGo(padding: 0)
    }

    func testStaleTemporariesOfADeadWriterGoInEveryDirectoryOfALargeWrite() throws {
        try checkStaleTemporariesGo(padding: 40)
    }

    private func checkStaleTemporariesGo(padding: Int) throws {
        for host in ["a.example", "b.example"] {
            let directory = root.path("/etc/containerd/certs.d/\(host)")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "half".write(toFile: directory + "/.mirror-agent-tmp-999999999-1-hosts.toml", atomically: false, encoding: .utf8)
        }
        // A stale temporary at the base too (a file written directly into it).
        try "half".write(toFile: root.path("/etc/containerd/certs.d/.mirror-agent-tmp-999999999-2-top.conf"), atomically: false, encoding: .utf8)
        var writes = (["a.example", "b.example"] + (0..<padding).map { "pad\($0).example" }).map {
            AtomicWriter.Write(Array("x = 1\n".utf8), base: "/etc/containerd/certs.d", relative: "\($0)/hosts.toml", mode: 0o644)
        }
        writes.append(AtomicWriter.Write(Array("top\n".utf8), base: "/etc/containerd/certs.d", relative: "top.conf", mode: 0o644))
        XCTAssertEqual(AtomicWriter(root: root).writeAll(writes).filter { (try? $0.get()) == nil }.count, 0)
        let top = try FileManager.default.contentsOfDirectory(atPath: root.path("/etc/containerd/certs.d")).filter { $0.hasPrefix(".mirror-agent-tmp-") }
        XCTAssertEqual(top, [], "the base's stale temporary is removed too")
        for host in ["a.example", "b.example"] {
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path("/etc/containerd/certs.d/\(host)")), ["hosts.toml"])
        }
    }
}
