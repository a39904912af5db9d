import DesiredState
import Diagnostics
import Foundation
import XCTest

/// R3: hostile input is refused with a clear error, and nothing gets through to a path.
final class HostileInputTests: XCTestCase {
    var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch + "/etc/mirror-agent/mirrors.d", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: scratch) }

    func write(_ name: String, _ text: String, mode: Int = 0o644) throws -> String {
        let path = scratch + "/etc/mirror-agent/mirrors.d/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    let valid = "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\"]\n"

    func testWorldWritableDesiredStateIsRefused() throws {
        let path = try write("a.yaml", valid, mode: 0o666)
        let result = DesiredStateLoader.load(root: HostRoot(scratch), settings: AgentSettings())
        XCTAssertEqual(result.errorTexts, ["\(path):1:1: refusing to trust this file: it is world-writable (mode 666); run chmod go-w on it"])
        XCTAssertEqual(result.model, MirrorModel())
    }

    func testDesiredStateOwnedBySomeoneElseIsRefused() throws {
        let path = try write("a.yaml", valid)
        guard geteuid() == 0 else { return XCTFail("this test runs as root (make test does)") }
        XCTAssertEqual(chown(path, 4242, 4242), 0)
        let result = DesiredStateLoader.load(root: HostRoot(scratch), settings: AgentSettings())
        XCTAssertEqual(result.errorTexts, ["\(path):1:1: refusing to trust this file: it is owned by uid 4242, not root"])
    }

    func testAHugeFileIsRefusedUnread() throws {
        let path = scratch + "/etc/mirror-agent/mirrors.d/huge.yaml"
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 100 << 20)  // 100 MB (sparse): never read
        try handle.close()
        let result = DesiredStateLoader.load(root: HostRoot(scratch), settings: AgentSettings())
        XCTAssertEqual(result.errorTexts, ["\(path):1:1: file is 104857600 bytes, larger than the 8388608-byte limit; refusing to read it"])
    }

    func testEscapesAndInjectionsInHostsAreRefused() {
        let cases: [(String, String)] = [
            ("%2e%2e", "label \"%2e%2e\" may only use letters, digits and \"-\""),
            ("/etc/passwd", "is a path, not a registry host[:port]"),
            ("..", "it contains \"..\""),
            ("a\\\\b", "it contains a path separator"),
            ("x\\\"]\\n[host", "it contains white space"),
            ("évil.example", "label \"évil\" may only use letters, digits and \"-\""),
        ]
        for (host, why) in cases {
            let result = load(text: "mirrors:\n  \"\(host)\":\n    endpoint: [\"https://m.example\"]\n")
            XCTAssertEqual(result.diagnostics.errors.count, 1, host)
            XCTAssertTrue(result.diagnostics.errors.first?.message.hasSuffix(why) ?? false, "\(host): \(result.errorTexts)")
        }
    }

    func testAliasBombInADesiredStateFile() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let result = load(text: text)
        XCTAssertTrue(result.errorTexts.first?.contains("more than 1000000 nodes") ?? false, "\(result.errorTexts)")
    }
}
