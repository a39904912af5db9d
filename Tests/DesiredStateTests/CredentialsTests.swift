import DesiredState
import Diagnostics
import Foundation
import XCTest

/// Issue 15: MirrorSet credentials (files recommended, inline accepted, docker config.json),
/// read through the safe reader with the trust walk; values never in a message.
final class CredentialsTests: XCTestCase {
    var scratch: String!
    var root: HostRoot { HostRoot(scratch) }
    let password = "pw-\(UInt32.random(in: 0...UInt32.max))-secret"

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw NeedsRoot() }
        scratch = NSTemporaryDirectory() + "creds-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch + "/etc/mirror-agent/secrets", withIntermediateDirectories: true)
        for dir in [scratch!, scratch + "/etc", scratch + "/etc/mirror-agent"] { chmod(dir, 0o755) }
        chmod(scratch + "/etc/mirror-agent/secrets", 0o700)
    }

    override func tearDownWithError() throws {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
    }

    func secretFile(_ name: String, _ text: String, mode: mode_t = 0o600) throws -> String {
        let hostPath = "/etc/mirror-agent/secrets/" + name
        try text.write(toFile: scratch + hostPath, atomically: false, encoding: .utf8)
        chmod(scratch + hostPath, mode)
        return hostPath
    }

    func mirrorSet(_ credentials: String, source: String = "docker.io", sourceCredentials: String? = nil) -> String {
        var text = """
            apiVersion: mirror-agent/v1
            kind: MirrorSet
            spec:
              registries:
                - source: \(source)
                  mirrors:
                    - url: https://mirror.corp.example:5000
                      credentials:
            \(credentials.split(separator: "\n").map { "              " + $0 }.joined(separator: "\n"))

            """
        if let sourceCredentials {
            text += "      sourceCredentials:\n" + sourceCredentials.split(separator: "\n").map { "        " + $0 }.joined(separator: "\n") + "\n"
        }
        return text
    }

    func load(_ text: String) -> DesiredStateLoader.Result {
        DesiredStateLoader.load(text: text, file: "m.yaml", root: root)
    }

    func everything(_ result: DesiredStateLoader.Result) -> String {
        result.diagnostics.items.map(\.description).joined(separator: "\n") + "\(result.model)"
    }

    func testFilesAreReadAndTheirTrailingNewlineDropped() throws {
        let user = try secretFile("user", "robot\n")
        let pw = try secretFile("pw", password + "\n")
        let result = load(mirrorSet("usernameFile: \(user)\npasswordFile: \(pw)"))
        XCTAssertTrue(result.isValid, everything(result))
        XCTAssertEqual(result.model.credentials.count, 1)
        guard let c = result.model.credentials.first else { return }
        XCTAssertEqual(c.host, "mirror.corp.example:5000")
        XCTAssertEqual(c.username, "robot")
        XCTAssertEqual(c.password?.value, password)
        XCTAssertEqual(c.files, [user, pw])
        XCTAssertEqual(c.location, SourceLocation(file: "m.yaml", line: 9, column: 15))
        XCTAssertFalse(everything(result).contains(password))
    }

    func testInlineValuesAndSourceCredentials() {
        let result = load(mirrorSet("username: robot\npassword: \(password)", sourceCredentials: "identityToken: tok-\(password)"))
        XCTAssertTrue(result.isValid, everything(result))
        XCTAssertEqual(result.model.credentials.map(\.host), ["docker.io", "mirror.corp.example:5000"])
        guard result.model.credentials.count == 2 else { return }
        XCTAssertEqual(result.model.credentials[0].identityToken?.value, "tok-\(password)")
        XCTAssertEqual(result.model.credentials[1].files, [])
        XCTAssertFalse(everything(result).contains(password))
    }

    func testDockerConfigJSONWithTabsAndURLKeys() throws {
        let auth = Data("robot:\(password)".utf8).base64EncodedString()
        let file = try secretFile("config.json", "{\n\t\"auths\": {\n\t\t\"https://mirror.corp.example:5000/v1/\": {\n\t\t\t\"auth\": \"\(auth)\"\n\t\t}\n\t}\n}\n")
        let result = load(mirrorSet("authFile: \(file)"))
        XCTAssertTrue(result.isValid, everything(result))
        XCTAssertEqual(result.model.credentials.first?.auth?.value, auth)
        XCTAssertEqual(CredentialFiles.decodeBasicAuth(auth)?.1, password)

        let other = try secretFile("other.json", "{\"auths\": {\"elsewhere.example\": {\"auth\": \"\(auth)\"}}, \"credsStore\": \"pass\"}")
        let missing = load(mirrorSet("authFile: \(other)"))
        XCTAssertFalse(missing.isValid)
        XCTAssertTrue(everything(missing).contains("no entry for mirror.corp.example:5000 under \"auths\" (credential helpers"), everything(missing))
        XCTAssertFalse(everything(missing).contains(auth))
    }

    func testBadFilesAreErrorsAtTheirPlaceWithoutContent() throws {
        let pw = try secretFile("pw", "\(password)\nsecond line\n")
        let twoLines = load(mirrorSet("username: robot\npasswordFile: \(pw)"))
        XCTAssertEqual(
            twoLines.diagnostics.errors.map(\.description),
            ["m.yaml:10:29: spec.registries[0].mirrors[0].credentials.passwordFile /etc/mirror-agent/secrets/pw: the file holds more than one line or a control character (its content is not shown)"])

        let missing = load(mirrorSet("username: robot\npasswordFile: /etc/mirror-agent/secrets/nope"))
        XCTAssertEqual(missing.diagnostics.errors.first?.message.hasSuffix("file does not exist"), true)

        // Written by group: refused by the trust walk before a byte is read.
        let writable = try secretFile("gw", password, mode: 0o664)
        let refused = load(mirrorSet("username: robot\npasswordFile: \(writable)"))
        XCTAssertTrue(everything(refused).contains("refusing to trust this file: it is group-writable"), everything(refused))

        // Readable by others: works, with a warning.
        let readable = try secretFile("r", password, mode: 0o644)
        let warned = load(mirrorSet("username: robot\npasswordFile: \(readable)"))
        XCTAssertTrue(warned.isValid)
        XCTAssertTrue(warned.diagnostics.warnings.contains { $0.message.contains("is readable by group or others (mode 644); run chmod 600 on it") })
        for result in [twoLines, missing, refused, warned] { XCTAssertFalse(everything(result).contains(password)) }
    }

    func testShapeErrorsNeverShowTheValue() {
        let cases: [(String, String)] = [
            ("password: \(password)", "a password needs a username"),
            ("username: robot", "needs passwordFile (or password), identityToken(File), or authFile"),
            ("username: robot\npassword: \(password)\npasswordFile: /x", "has both password and passwordFile"),
            ("username: robot\npassword: [\(password)]", "must be a string (its value is not shown)"),
            ("authFile: /x\npassword: \(password)", "authFile gives every value"),
            ("username: robot\npasswordFile: relative/\(password)", "must be an absolute path"),
            ("pasword: \(password)", "unknown field \"pasword\""),
        ]
        for (yaml, message) in cases {
            let result = load(mirrorSet(yaml))
            XCTAssertFalse(result.isValid, yaml)
            XCTAssertTrue(everything(result).contains(message), "\(yaml): \(everything(result))")
            XCTAssertFalse(everything(result).contains(password), yaml)
        }
        let wildcard = load(mirrorSet("username: a\npassword: b", source: "\"*\"", sourceCredentials: "username: a\npassword: b"))
        XCTAssertTrue(everything(wildcard).contains("sourceCredentials needs a source with one registry host"), everything(wildcard))
    }

    func testOneHostOneSetOfCredentials() {
        // k3s configs for registry-1.docker.io and a MirrorSet's docker.io source are one host.
        let k3s = "configs:\n  registry-1.docker.io:\n    auth:\n      username: a\n      password: \(password)\n"
        let agree = DesiredStateLoader.load(text: k3s + "---\n" + mirrorSet("username: r\npassword: p", sourceCredentials: "username: a\npassword: \(password)"), file: "m.yaml", root: root)
        XCTAssertTrue(agree.isValid, everything(agree))
        XCTAssertEqual(agree.model.credentials.count, 2)
        let differ = DesiredStateLoader.load(text: k3s + "---\n" + mirrorSet("username: r\npassword: p", sourceCredentials: "username: a\npassword: other"), file: "m.yaml", root: root)
        XCTAssertEqual(differ.diagnostics.errors.map(\.message), ["credentials for registry-1.docker.io differ from those declared at m.yaml:4:7 (values are not shown); one host has one set of credentials"])
        XCTAssertFalse(everything(differ).contains(password))
    }
}
