import DesiredState
import Diagnostics
import Foundation
import MarkedYAML
import XCTest

/// Issue 19: a hostile fragment or a local user cannot hang, crash, or read through the agent.
/// One test (or a few) per defect of the issue, numbered as there; each failed on the code
/// before the fix (see SECURITY.md).
final class TrustTests: XCTestCase {
    var scratch: String!
    var root: HostRoot { HostRoot(scratch) }
    var dropIns: String { scratch + "/etc/mirror-agent/mirrors.d" }

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw NeedsRoot() }
        scratch = NSTemporaryDirectory() + "trust-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dropIns, withIntermediateDirectories: true)
        for dir in [scratch!, scratch + "/etc", scratch + "/etc/mirror-agent", dropIns] { chmod(dir, 0o755) }
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
    }

    let valid = "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\"]\n"
    let secret = "s3cr3t-hunter2-\(UInt32.random(in: 0...UInt32.max))"

    @discardableResult
    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws -> String {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode)
        return path
    }

    func loadAll() -> DesiredStateLoader.Result {
        DesiredStateLoader.load(root: root, settings: AgentSettings())
    }

    /// Everything the agent could print about a result.
    func everything(_ result: DesiredStateLoader.Result) -> String {
        result.diagnostics.items.map(\.description).joined(separator: "\n")
    }

    // MARK: 1. content of another file never leaks; a non-root symlink is refused

    func testASymlinkOwnedByAnotherUserIsRefusedBeforeReadingItsTarget() throws {
        let hidden = try write(scratch + "/etc/shadow-like", "\(secret)\n", mode: 0o600)
        let link = dropIns + "/a.yaml"
        XCTAssertEqual(symlink(hidden, link), 0)
        XCTAssertEqual(lchown(link, 4242, 4242), 0)
        let result = loadAll()
        XCTAssertEqual(result.errorTexts, ["\(link):1:1: refusing to trust this file: the symlink \(link) is owned by uid 4242, not root"])
        XCTAssertFalse(everything(result).contains(secret))
    }

    /// Which renames in a desired-state directory publish something (issue 17: a rename to any
    /// other name is a tool's work in progress and runs no pass).
    func testNamesReadThroughInADesiredStateDirectory() {
        XCTAssertTrue(DesiredStateLoader.readsThrough("bench.yaml"))
        XCTAssertTrue(DesiredStateLoader.readsThrough("..data"), "the kubelet renames a new ..data link over the old one: that is the ConfigMap's publication")
        XCTAssertFalse(DesiredStateLoader.readsThrough("..data_tmp"))
        XCTAssertFalse(DesiredStateLoader.readsThrough(".bench.tmp"))
        XCTAssertFalse(DesiredStateLoader.readsThrough("bench.yaml.dpkg-new"))
    }

    func testARootOwnedConfigMapMountStillWorks() throws {
        // kubelet's layout: name.yaml -> ..data/name.yaml, ..data -> ..<timestamp>/
        let stamp = dropIns + "/..2026_12_01_10_00_00.123456"
        try FileManager.default.createDirectory(atPath: stamp, withIntermediateDirectories: false)
        chmod(stamp, 0o755)
        try write(stamp + "/mirrors.yaml", valid)
        XCTAssertEqual(symlink("..2026_12_01_10_00_00.123456", dropIns + "/..data"), 0)
        XCTAssertEqual(symlink("..data/mirrors.yaml", dropIns + "/mirrors.yaml"), 0)
        let result = loadAll()
        XCTAssertEqual(result.errorTexts, [])
        XCTAssertEqual(result.model.registries.map(\.source.description), ["docker.io"])
    }

    func testAnAbsoluteSymlinkResolvesUnderTheRootAndItsTargetChainIsChecked() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/srv/open", withIntermediateDirectories: true)
        chmod(scratch + "/srv", 0o755)
        chmod(scratch + "/srv/open", 0o777)  // anyone could swap the file in here
        try write(scratch + "/srv/open/m.yaml", valid)
        XCTAssertEqual(symlink("/srv/open/m.yaml", dropIns + "/m.yaml"), 0)
        let result = loadAll()
        XCTAssertEqual(result.errorTexts, ["\(dropIns)/m.yaml:1:1: refusing to trust this file: the directory \(scratch!)/srv/open is writable by others (mode 777); run chmod go-w on it"])
        chmod(scratch + "/srv/open", 0o755)
        XCTAssertEqual(loadAll().errorTexts, [])
    }

    // MARK: 2. secrets are never echoed

    func testAK3sAuthOfTheWrongShapeIsNotEchoed() {
        let result = load(text: "configs:\n  r.example:\n    auth: \"admin:\(secret)\"\n")
        XCTAssertEqual(result.diagnostics.errors.count, 1)
        XCTAssertTrue(result.errorTexts.first?.hasSuffix("(its value is not shown)") ?? false, "\(result.errorTexts)")
        XCTAssertFalse(everything(result).contains(secret))
        let nested = load(text: "configs:\n  r.example:\n    auth:\n      password: [\"\(secret)\"]\n")
        XCTAssertEqual(nested.diagnostics.errors.count, 1)
        XCTAssertFalse(everything(nested).contains(secret), everything(nested))
    }

    func testURLUserinfoIsRedacted() {
        let result = load(text: "mirrors:\n  docker.io:\n    endpoint: [\"https://admin:\(secret)@m.example\"]\n")
        XCTAssertEqual(result.diagnostics.errors.count, 1)
        XCTAssertFalse(everything(result).contains(secret), everything(result))
        XCTAssertTrue(everything(result).contains("https://***@m.example"), everything(result))
    }

    func testHeaderValuesAreNeverShown() {
        let text = """
            apiVersion: mirror-agent/v1
            kind: MirrorSet
            spec:
              registries:
                - source: docker.io
                  mirrors:
                    - url: https://m.example
                      headers:
                        Authorization: "Bearer \(secret)\\nX-Injected: 1"

            """
        let result = load(text: text)
        XCTAssertEqual(result.diagnostics.errors.count, 1, everything(result))
        XCTAssertFalse(everything(result).contains(secret), everything(result))
    }

    func testSecretAssignmentsAreRedactedInAnyLine() {
        XCTAssertEqual(Quote.redactSecretAssignments("          auth = \"\(secret)\""), "          auth = \"<redacted>\"")
        XCTAssertEqual(Quote.redactSecretAssignments("password = '\(secret)', username = \"u\""), "password = \"<redacted>\", username = \"u\"")
        XCTAssertEqual(Quote.redactSecretAssignments("  Authorization = \"Bearer \(secret)\""), "  Authorization = \"<redacted>\"")
        XCTAssertEqual(Quote.redactSecretAssignments("  Authorization = [\"Bearer \(secret)\", \"x]\"] # c"), "  Authorization = [\"<redacted>\"] # c")
        XCTAssertEqual(Quote.redactSecretAssignments("identitytoken = \(secret)"), "identitytoken = \"<redacted>\"")
        XCTAssertEqual(Quote.redactSecretAssignments("author = \"me\""), "author = \"me\"")  // not a secret key
    }

    // MARK: 3. weak trust: group-writable files, open directories, non-root owners

    func testAGroupWritableFileIsRefused() throws {
        let path = try write(dropIns + "/a.yaml", valid, mode: 0o664)
        XCTAssertEqual(loadAll().errorTexts, ["\(path):1:1: refusing to trust this file: it is group-writable (mode 664); run chmod go-w on it"])
    }

    func testAWorldWritableDropInDirectoryIsRefused() throws {
        let path = try write(dropIns + "/a.yaml", valid)
        chmod(dropIns, 0o777)
        XCTAssertEqual(loadAll().errorTexts, ["\(path):1:1: refusing to trust this file: the directory \(dropIns) is writable by others (mode 777); run chmod go-w on it"])
    }

    func testADropInDirectoryOwnedByAnotherUserIsRefused() throws {
        let path = try write(dropIns + "/a.yaml", valid)
        XCTAssertEqual(chown(dropIns, 4242, 4242), 0)
        XCTAssertEqual(loadAll().errorTexts, ["\(path):1:1: refusing to trust this file: the directory \(dropIns) is owned by uid 4242, not root"])
    }

    func testAConfigDirectoryOwnedByAnotherUserIsRefused() throws {
        let path = try write(dropIns + "/a.yaml", valid)
        XCTAssertEqual(chown(scratch + "/etc/mirror-agent", 4242, 4242), 0)
        XCTAssertEqual(loadAll().errorTexts, ["\(path):1:1: refusing to trust this file: the directory \(scratch!)/etc/mirror-agent is owned by uid 4242, not root"])
        // agent.yaml in it is refused the same way.
        try write(scratch + "/etc/mirror-agent/agent.yaml", "adopt: false\n")
        let (_, diagnostics) = AgentSettings.load(root: root)
        XCTAssertEqual(diagnostics.errors.map(\.message), ["refusing to trust this file: the directory \(scratch!)/etc/mirror-agent is owned by uid 4242, not root"])
    }

    // MARK: 4. hangs: a FIFO never blocks

    /// Runs `body` on a thread; fails if it does not finish within 5 s (then `unblock` lets it go).
    func finishes(_ what: String, unblock: @escaping () -> Void, _ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: what)
        Thread.detachNewThread {
            body()
            done.fulfill()
        }
        let outcome = XCTWaiter().wait(for: [done], timeout: 5)
        if outcome != .completed {
            XCTFail("\(what) blocked")
            unblock()
            wait(for: [done], timeout: 5)
        }
    }

    func unblockFIFO(_ path: String) -> () -> Void {
        { let fd = open(path, O_WRONLY | O_NONBLOCK); if fd >= 0 { close(fd) } }
    }

    func testAFIFOInPlaceOfADesiredStateFileDoesNotBlock() throws {
        let fifo = dropIns + "/fifo.yaml"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let root = self.root
        nonisolated(unsafe) var result: DesiredStateLoader.Result?
        finishes("loading a FIFO", unblock: unblockFIFO(fifo)) {
            result = DesiredStateLoader.load(root: root, settings: AgentSettings())
        }
        XCTAssertEqual(result?.errorTexts, ["\(fifo):1:1: not a regular file (a FIFO, device, socket or directory is never read)"])
    }

    func testAFIFOInPlaceOfAgentYamlDoesNotBlock() throws {
        let fifo = scratch + "/etc/mirror-agent/agent.yaml"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let root = self.root
        nonisolated(unsafe) var diagnostics = DiagnosticList()
        finishes("reading agent.yaml as a FIFO", unblock: unblockFIFO(fifo)) {
            diagnostics = AgentSettings.load(root: root).1
        }
        XCTAssertEqual(diagnostics.errors.map(\.message), ["not a regular file (a FIFO, device, socket or directory is never read)"])
    }

    func testAFIFOAsARuntimeFileDoesNotBlock() throws {
        // config.toml and the TLS files are read without the trust walk, but never block either.
        let fifo = scratch + "/config.toml"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        nonisolated(unsafe) var outcome: Result<[UInt8], FileSystem.ReadError>?
        finishes("reading a FIFO config.toml", unblock: unblockFIFO(fifo)) {
            outcome = FileSystem.read(fifo, limit: 1 << 20)
        }
        XCTAssertEqual(outcome, .failure(.notRegularFile))
    }

    // MARK: 5. bounded work: aliases in ConfigMap data

    func testConfigMapDataAliasesCountAgainstTheFilesBudget() {
        // One 300 KB anchored string, aliased by 60 data keys: 18 MB of YAML to re-parse.
        let entry = "  - source: r.example\n    mirrors: [\"https://m.example\"]\n"
        var body = "apiVersion: mirror-agent/v1\nkind: MirrorSet\nspec:\n  registries:\n"
        while body.utf8.count < 300_000 { body += entry }
        var text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a0: &big |\n"
        text += body.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n"
        for i in 1...60 { text += "  a\(i): *big\n" }
        let start = ContinuousClock.now
        let result = load(text: text)
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(result.diagnostics.errors.count, 1, "\(result.errorTexts.prefix(3))")
        XCTAssertTrue(result.errorTexts.first?.contains("more than 8388608 bytes of text (aliases count in full)") ?? false, "\(result.errorTexts.prefix(3))")
        // Not a timing test (that is bench's job): a generous bound only so a regression is loud.
        XCTAssertLessThan(elapsed, .seconds(30))
    }

    func testEmbeddedDocumentsShareTheOuterNodeBudget() {
        // Each data value alone is within a 500-node limit; together they are not.
        let limits = YAMLLimits(maxBytes: 8 << 20, maxNodes: 500, maxDepth: 256)
        var text = "apiVersion: v1\nkind: ConfigMap\ndata:\n"
        for i in 0..<4 {
            text += "  k\(i): |\n    mirrors:\n"
            for j in 0..<30 { text += "      r\(i)x\(j).example:\n        endpoint: [\"https://m.example\"]\n" }
        }
        let result = DesiredStateLoader.load(text: text, file: "t.yaml", root: HostRoot("/nonexistent-root"), limits: limits)
        XCTAssertEqual(result.diagnostics.errors.count, 1, "\(result.errorTexts)")
        XCTAssertTrue(result.errorTexts.first?.contains("the documents embedded in this file exceed its 8388608-byte / 500-node budget") ?? false, "\(result.errorTexts)")
    }

    // MARK: 6. checked arithmetic in agent.yaml

    func testAHugeDurationIsARangeErrorNotATrap() {
        let (_, diagnostics) = AgentSettings.parse(Array("daemon:\n  debounce: 2562048h\n".utf8), file: "agent.yaml")
        XCTAssertEqual(diagnostics.errors.map(\.description), ["agent.yaml:2:13: daemon.debounce \"2562048h\" is out of range: at most 1h"])
        let (_, more) = AgentSettings.parse(Array("probe:\n  interval: 100000000000s\n".utf8), file: "agent.yaml")
        XCTAssertEqual(more.errors.map(\.description), ["agent.yaml:2:13: probe.interval \"100000000000s\" is out of range: at most 24h"])
    }

    func testDurationParsingIsCheckedIntegerArithmetic() {
        XCTAssertEqual(Duration.parseChecked("1m30s"), .success(.seconds(90)))
        XCTAssertEqual(Duration.parseChecked("1.5s"), .success(.milliseconds(1500)))
        XCTAssertEqual(Duration.parseChecked("200ms"), .success(.milliseconds(200)))
        XCTAssertEqual(Duration.parseChecked(".5h"), .success(.seconds(1800)))
        XCTAssertEqual(Duration.parseChecked("2562047h"), .success(.nanoseconds(2562047 * 3_600_000_000_000)))
        XCTAssertEqual(Duration.parseChecked("2562048h"), .failure(.overflow))
        XCTAssertEqual(Duration.parseChecked("99999999999999999999ns"), .failure(.overflow))
        XCTAssertEqual(Duration.parseChecked("9223372036854775807ns"), .success(.nanoseconds(Int64.max)))
        XCTAssertEqual(Duration.parseChecked("9223372036854775807ns1ns"), .failure(.overflow))
        for bad in ["", "s", "1", "1x", "-1s", "1..2s", ".s", "１s"] {
            XCTAssertEqual(Duration.parseChecked(bad), .failure(.invalid), bad)
        }
    }

    // MARK: 7. forged output: control characters and huge values

    func testControlCharactersAreEscapedAndLongValuesCut() {
        let forged = "x\u{1b}[2K\r\nmirrors.yaml: valid\u{0}"
        let result = load(text: "mirrors:\n  docker.io:\n    endpoint: [\"\(forged.unicodeScalars.map { $0.value < 0x20 ? String(format: "\\x%02x", $0.value) : String($0) }.joined())\"]\n")
        let text = everything(result)
        XCTAssertEqual(result.diagnostics.errors.count, 1, text)
        XCTAssertFalse(text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, text)
        XCTAssertTrue(text.contains("\\u{1b}[2K\\r\\n"), text)

        let huge = String(repeating: "a", count: 7 << 20)
        let big = load(text: "mirrors:\n  docker.io:\n    endpoint: [\"https://\(huge)\"]\n")
        XCTAssertEqual(big.diagnostics.errors.count, 1)
        XCTAssertLessThanOrEqual(everything(big).count, Quote.maxMessageLength + 100)
    }

    func testEveryDiagnosticIsOneBoundedLine() {
        let d = Diagnostic.error("bad \"\(String(repeating: "z", count: 5000))\"\nsecond line https://u:\(secret)@h/x", at: nil)
        XCTAssertFalse(d.message.contains("\n"))
        XCTAssertFalse(d.message.contains(secret))
        XCTAssertLessThanOrEqual(d.message.count, Quote.maxMessageLength + 20)
        XCTAssertEqual(Quote.value(String(repeating: "q", count: 300)).count, 200 + 2 + "...\" (300 characters)".count - 1)
    }

    // MARK: 2b. STATUS= and status.json: place and kind only

    /// What status.json and STATUS= say of a problem is its place and a kind from a fixed list:
    /// a value planted in each kind of bad input never reaches it, whatever the message quotes.
    func testThePublicFormOfAProblemCarriesNoInputValue() {
        let v = "zq\(secret)"
        let cases: [(String, String, String)] = [
            ("mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\"]\n    \(v): 1\n", "t.yaml", "unknown key"),
            ("mirrors:\n  \"\(v):00080\":\n    endpoint: [\"https://m.example\"]\n", "t.yaml", "invalid host"),
            ("mirrors:\n  docker.io:\n    endpoint: [\"ftp://\(v)\"]\n", "t.yaml", "invalid mirror"),
            ("kind: \(v)\napiVersion: v1\n", "t.yaml", "unknown document kind"),
            ("mirrors: [\(v)\n", "t.yaml", "YAML syntax error"),
            ("configs:\n  docker.io:\n    auth: \(v)\n", "t.yaml", "invalid credentials"),
        ]
        for (text, file, kind) in cases {
            let errors = load(text: text, file: file).diagnostics.errors
            XCTAssertFalse(errors.isEmpty, text)
            XCTAssertTrue(errors.contains { $0.message.contains("zq") || $0.kind == kind }, "\(errors)")
            for e in errors {
                XCTAssertFalse(e.publicDescription.contains(secret), e.publicDescription)
                XCTAssertTrue(DiagnosticKind.all.contains(e.kind), e.kind)
                XCTAssertTrue(e.publicDescription.hasPrefix("t.yaml:"), e.publicDescription)
            }
            XCTAssertEqual(errors.first?.kind, kind, "\(errors)")
        }
        let (_, settings) = AgentSettings.parse(Array("daemon:\n  debounce: 1\(v)\n".utf8), file: "agent.yaml")
        XCTAssertEqual(settings.errors.map(\.publicDescription), ["agent.yaml:2:13: invalid duration"])
        let (_, range) = AgentSettings.parse(Array("daemon:\n  restartDelay: 9999h\n".utf8), file: "agent.yaml")
        XCTAssertEqual(range.errors.map(\.publicDescription), ["agent.yaml:2:17: value out of range"])
        // Warnings too: a missing CA file, named by its path.
        let warned = load(text: "configs:\n  docker.io:\n    tls:\n      ca_file: /etc/\(v).pem\n").diagnostics.warnings
        XCTAssertFalse(warned.isEmpty)
        XCTAssertTrue(warned.contains { $0.description.contains(secret) }, "\(warned)")
        for w in warned {
            XCTAssertFalse(w.publicDescription.contains(secret), w.publicDescription)
            XCTAssertTrue(w.publicDescription.hasSuffix(": warning: TLS file missing"), w.publicDescription)
        }
        // A value cannot steer the kind: the quoted text is not looked at.
        XCTAssertEqual(Diagnostic.error("daemon.debounce \"is out of range\" is not a duration such as 2s", at: nil).kind, "invalid duration")
    }

    // MARK: 8. host grammar

    func testMalformedHostsAreRefused() {
        let refused: [(String, String)] = [
            (":5000", "the host name before the port is empty"),
            ("[::::]", "is not an IPv6 address"),
            ("[.:.]", "is not an IPv6 address"),
            ("[1:2:3:4:5:6:7:8:9]", "is not an IPv6 address"),
            ("[fe80::1%eth0]", "is not an IPv6 address"),
            ("host:00080", "has a leading zero"),
            ("host:0", "is not a number from 1 to 65535"),
            ("host:65536", "is not a number from 1 to 65535"),
        ]
        for (host, why) in refused {
            let result = load(text: "mirrors:\n  \"\(host)\":\n    endpoint: [\"https://m.example\"]\n")
            XCTAssertEqual(result.diagnostics.errors.count, 1, host)
            XCTAssertTrue(result.errorTexts.first?.contains(why) ?? false, "\(host): \(result.errorTexts)")
        }
        for host in ["[::1]:5000", "[fe80::1]", "[2001:db8:0:0:0:0:0:1]", "[::]", "localhost:5000", "r.example:65535", "10.0.0.1:80"] {
            let result = load(text: "mirrors:\n  \"\(host)\":\n    endpoint: [\"https://m.example\"]\n")
            XCTAssertEqual(result.errorTexts, [], host)
        }
        let mirror = load(text: "mirrors:\n  docker.io:\n    endpoint: [\"https://:5000\"]\n")
        XCTAssertEqual(mirror.diagnostics.errors.count, 1, "\(mirror.errorTexts)")
    }
}

/// The trust tests chown files to root and to others: run as anyone else they fail, not skip.
struct NeedsRoot: Error, CustomStringConvertible {
    var description: String { "these tests need root to chown files (make test runs as root)" }
}
