import Diagnostics
import Foundation
import XCTest

@testable import DesiredState
@testable import RuntimeWriters

/// certs.d copies and the CRI-O auth file (issue 15, item 3).
final class CRIOPrivateMirrorsTests: ScratchRootTestCase {
    let at = SourceLocation(file: "/etc/mirror-agent/mirrors.yaml", line: 3, column: 5)
    let cert = "-----BEGIN CERTIFICATE-----\nMIIBbjCCAROgAwIBAgIU\nbQwVIHzZ+mhEBQRy9Jei==\n-----END CERTIFICATE-----\n"
    let key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIFakeKeyBody\n-----END EC PRIVATE KEY-----\n"

    func renderer(_ files: [String: String], previous: [String: String] = [:]) -> CRIOCertsRenderer {
        CRIOCertsRenderer(
            read: { path in files[path].map { .success(Array($0.utf8)) } ?? .failure(.missing) },
            previous: { previous[$0] })
    }

    func model(mirrorTLS: TLSSettings, sourceTLS: TLSSettings = TLSSettings(), scheme: URLScheme = .https, overridePath: Bool = false) -> MirrorModel {
        MirrorModel(registries: [
            Registry(
                source: .host("docker.io"),
                mirrors: [MirrorEndpoint(scheme: scheme, host: "mirror.example:5000", path: overridePath ? "/api/v2" : "", overridePath: overridePath, tls: mirrorTLS, origins: [at])],
                sourceTLS: sourceTLS, origins: [at])
        ])
    }

    func testCopiesCAAndClientPairPerHost() {
        let tls = TLSSettings(caFiles: ["/pki/ca.pem"], clientCertificate: "/pki/node.pem", clientKey: "/pki/node-key.pem")
        let result = renderer(["/pki/ca.pem": "junk before\n" + cert + "trailing", "/pki/node.pem": cert + key, "/pki/node-key.pem": key]).render(model(mirrorTLS: tls))
        XCTAssertEqual(result.warnings, [])
        XCTAssertEqual(result.files.map(\.relativePath), ["mirror.example:5000/ca.crt", "mirror.example:5000/client.cert", "mirror.example:5000/client.key"])
        XCTAssertEqual(result.files.map(\.baseDirectory), Array(repeating: "/etc/containers/certs.d", count: 3))
        XCTAssertEqual(result.files.map(\.mode), [0o644, 0o644, 0o600])
        XCTAssertEqual(result.files.map(\.secret), [false, false, true])
        // Only PEM blocks of the right kind: no junk, no key in the certificate file.
        XCTAssertTrue(result.files[0].contents.hasPrefix(ManagedHeader.marker))
        XCTAssertTrue(result.files[0].contents.hasSuffix(cert))
        XCTAssertFalse(result.files[0].contents.contains("junk"))
        XCTAssertFalse(result.files[1].contents.contains("PRIVATE KEY"))
        XCTAssertTrue(result.files[2].contents.hasSuffix(key))
    }

    func testSourceTLSAndSeveralCAFiles() {
        let result = renderer(["/a.pem": cert, "/b.pem": cert.replacingOccurrences(of: "MIIB", with: "MIIC")])
            .render(model(mirrorTLS: TLSSettings(), sourceTLS: TLSSettings(caFiles: ["/a.pem", "/b.pem"])))
        XCTAssertEqual(result.files.map(\.relativePath), ["docker.io/ca.crt"])
        XCTAssertEqual(result.files[0].contents.components(separatedBy: "BEGIN CERTIFICATE").count - 1, 2)
    }

    func testNothingForPlainHTTPOverridePathOrSkipVerifyOnly() {
        let tls = TLSSettings(caFiles: ["/pki/ca.pem"])
        let files = ["/pki/ca.pem": cert]
        XCTAssertEqual(renderer(files).render(model(mirrorTLS: tls, scheme: .http)).files, [])
        XCTAssertEqual(renderer(files).render(model(mirrorTLS: tls, overridePath: true)).files, [])
        XCTAssertEqual(renderer(files).render(model(mirrorTLS: TLSSettings(skipVerify: true))).files, [])
    }

    func testNonPEMContentIsNeverCopied() {
        // A path that names something else (a password file, an OpenSSH key) copies nothing.
        let tls = TLSSettings(caFiles: ["/etc/shadow"], clientCertificate: "/pki/node.pem", clientKey: "/etc/ssh/ssh_host_ed25519_key")
        let result = renderer([
            "/etc/shadow": "root:$y$j9T$secret:19000:0:99999:7:::\n", "/pki/node.pem": cert,
            "/etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n",
        ]).render(model(mirrorTLS: tls))
        XCTAssertEqual(result.files, [])
        XCTAssertEqual(result.warnings.count, 2)
        XCTAssertFalse(result.warnings.contains { $0.message.contains("secret") || $0.message.contains("b3Bl") })
        // A CERTIFICATE block whose body is not base64 is left out too.
        XCTAssertEqual(CRIOCertsRenderer.pemBlocks("-----BEGIN CERTIFICATE-----\nroot:x:0:0\n-----END CERTIFICATE-----\n", kind: .certificate), [])
    }

    func testUnreadableSourceKeepsThePreviousCopy() {
        let tls = TLSSettings(caFiles: ["/pki/ca.pem"], clientCertificate: "/pki/node.pem", clientKey: "/pki/node-key.pem")
        let old = ManagedHeader.marker + "\n" + cert
        let base = "/etc/containers/certs.d/mirror.example:5000/"
        let kept = renderer([:], previous: [base + "ca.crt": old, base + "client.cert": old, base + "client.key": old]).render(model(mirrorTLS: tls))
        XCTAssertEqual(kept.files.map(\.contents), [old, old, old])
        XCTAssertEqual(kept.files.map(\.mode), [0o644, 0o644, 0o600])
        XCTAssertTrue(kept.warnings.contains { $0.message.contains("keeping") })
        // No copy before: nothing, and never a key without its certificate.
        let none = renderer(["/pki/node-key.pem": key]).render(model(mirrorTLS: tls))
        XCTAssertEqual(none.files, [])
    }

    // MARK: - Credentials

    func credentials(_ host: String, user: String? = "bob", password: String? = "s3cret", auth: String? = nil, token: String? = nil) -> HostCredentials {
        HostCredentials(host: host, username: user, password: password.map(Secret.init), auth: auth.map(Secret.init), identityToken: token.map(Secret.init), location: at)
    }

    func testAuthFileAndDropIn() throws {
        let model = MirrorModel(credentials: [credentials("mirror.example:5000"), credentials("registry-1.docker.io", user: nil, password: nil, auth: "YTpi"), credentials("ghcr.io", user: nil, password: nil, token: "tok\"en")])
        let result = CRIOAuthRenderer(crioInstalled: true).render(model)
        XCTAssertEqual(result.warnings, [])
        XCTAssertEqual(result.files.map(\.path), [CRIOAuthRenderer.authFile, CRIOAuthRenderer.crioDropIn])
        XCTAssertEqual(result.files.map(\.mode), [0o600, 0o644])
        XCTAssertEqual(result.files.map(\.secret), [true, false])
        // The auth file is what containers/image parses: JSON with base64 user:password.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.files[0].contents.utf8)) as? [String: [String: [String: String]]])
        let auths = try XCTUnwrap(json["auths"])
        XCTAssertEqual(Set(auths.keys), ["mirror.example:5000", "registry-1.docker.io", "docker.io", "ghcr.io"])
        XCTAssertEqual(auths["mirror.example:5000"]?["auth"], Data("bob:s3cret".utf8).base64EncodedString())
        XCTAssertEqual(auths["docker.io"]?["auth"], "YTpi")
        XCTAssertEqual(auths["ghcr.io"]?["identitytoken"], "tok\"en")
        XCTAssertEqual(auths["ghcr.io"]?["auth"], Data("<token>:".utf8).base64EncodedString())
        XCTAssertTrue(result.files[1].contents.contains("[crio.image]\nglobal_auth_file = \"/etc/containers/mirror-agent-auth.json\"\n"))
        XCTAssertFalse(result.files[1].contents.contains("s3cret"))
    }

    /// The auth file is written with FoundationEssentials' JSON encoder (no full Foundation in the
    /// agent). Its escaping and layout are byte for byte those of Foundation's JSONSerialization,
    /// which wrote it before; only the key order differs where JSONSerialization's localized
    /// numeric, case-folding sort disagrees with plain code-point order (`10.0.0.2` before
    /// `10.0.0.10`, `Reg` after `a`): the encoder's order does not depend on a locale.
    func testAuthFileMatchesFoundationsJSONWriterInCodePointOrder() throws {
        let tokens = ["tok\"en", "back\\slash", "a/b+c=", "tab\tnew\nline\r", "\u{1}\u{1f}\u{7f}", "ünï©ødé 🙂", "\u{2028}\u{2029}", "</script>"]
        func render(_ hosts: [String]) throws -> String {
            var credentials: [HostCredentials] = []
            for (i, host) in hosts.enumerated() {
                let token = tokens[i % tokens.count]
                credentials.append(i % 2 == 0 ? self.credentials(host, user: "u/" + token, password: token) : self.credentials(host, user: nil, password: nil, auth: "YTpi", token: token))
            }
            let result = CRIOAuthRenderer(crioInstalled: false).render(MirrorModel(credentials: credentials))
            return try XCTUnwrap(result.files.first { $0.path == CRIOAuthRenderer.authFile }).contents
        }
        func foundationWriter(_ written: String) throws -> String {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(written.utf8)) as? [String: [String: [String: String]]])
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        // Hosts both sorts agree on: the same bytes, escapes included.
        let plain = try render(["a.example:443", "a.example:5000", "ghcr.io", "mirror.example", "registry-1.docker.io", "quay.io", "z.example", "10.0.0.1:5000"])
        XCTAssertEqual(plain, try foundationWriter(plain))
        // Hosts they order differently: code-point order, same escaping.
        let hosts = ["reg10.example", "reg9.example", "Reg.example", "10.0.0.2:5000", "10.0.0.10:5000", "ÿ.example", "z.example"]
        let written = try render(hosts)
        let keys = written.split(separator: "\n").filter { $0.hasPrefix("    \"") }.map { String($0.dropFirst(5).prefix { $0 != "\"" }) }
        XCTAssertEqual(keys, hosts.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        XCTAssertNotEqual(written, try foundationWriter(written))
        XCTAssertEqual(written.split(separator: "\n").sorted(), try foundationWriter(written).split(separator: "\n").sorted())
    }

    func testNeverTakesCredentialsAwayFromCRIO() throws {
        let model = MirrorModel(credentials: [credentials("mirror.example:5000")])
        // No credentials: nothing at all.
        XCTAssertEqual(CRIOAuthRenderer(crioInstalled: true).render(MirrorModel()).files, [])
        // The admin's global_auth_file (read from crio.conf.d, ours left out) wins.
        try write("/etc/crio/crio.conf.d/10-auth.conf", "[crio.image]\nglobal_auth_file = \"/etc/crio/auth.json\"\n")
        try write(CRIOAuthRenderer.crioDropIn, "[crio.image]\nglobal_auth_file = \"/ours\"\n")
        let found = try XCTUnwrap(CRIOAuthRenderer.globalAuthFile(root: root))
        XCTAssertEqual(found.path, "/etc/crio/auth.json")
        XCTAssertEqual(found.setIn, root.path("/etc/crio/crio.conf.d/10-auth.conf"))
        let admin = CRIOAuthRenderer(crioInstalled: true, globalAuthFile: found).render(model)
        XCTAssertEqual(admin.files.map(\.path), [CRIOAuthRenderer.authFile])
        XCTAssertTrue(admin.warnings.first?.message.contains("/etc/crio/auth.json") == true)
        // A default auth file CRI-O reads today: not replaced either.
        let defaults = CRIOAuthRenderer(crioInstalled: true, presentDefaultAuthFiles: ["/run/containers/0/auth.json"]).render(model)
        XCTAssertEqual(defaults.files.map(\.path), [CRIOAuthRenderer.authFile])
        XCTAssertEqual(defaults.warnings.count, 1)
        // No CRI-O: only the auth file (for podman/skopeo --authfile).
        XCTAssertEqual(CRIOAuthRenderer(crioInstalled: false).render(model).files.map(\.path), [CRIOAuthRenderer.authFile])
        // An empty value set later clears it, as CRI-O's decoding does.
        try write("/etc/crio/crio.conf.d/20-clear.conf", "[crio.image]\nglobal_auth_file = \"\"\n")
        XCTAssertNil(CRIOAuthRenderer.globalAuthFile(root: root))
    }

    func testReconcilerWritesAndNeverShowsSecrets() throws {
        try write("/pki/ca.pem", cert)
        try write("/etc/mirror-agent/agent.yaml", "runtimes: [crio]\n")
        var settings = AgentSettings()
        settings.runtimes = .explicit([.crio])
        var model = model(mirrorTLS: TLSSettings(caFiles: ["/pki/ca.pem"]))
        model.credentials = [credentials("mirror.example:5000")]
        let reconciler = Reconciler(root: root, settings: settings)
        let outcome = reconciler.apply(reconciler.plan(model), dryRun: false)
        XCTAssertEqual(outcome.failures, [])
        let paths = Set(outcome.changes.map(\.path))
        XCTAssertTrue(paths.contains("/etc/containers/certs.d/mirror.example:5000/ca.crt"))
        XCTAssertTrue(paths.contains(CRIOAuthRenderer.authFile))
        XCTAssertEqual(outcome.changes.first { $0.path == CRIOAuthRenderer.authFile }?.secret, true)
        var info = stat()
        XCTAssertEqual(stat(root.path(CRIOAuthRenderer.authFile), &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        // Rotation: the source changes, the next pass rewrites the copy.
        let rotated = cert.replacingOccurrences(of: "MIIB", with: "MIID")
        try write("/pki/ca.pem", rotated)
        let again = reconciler.apply(reconciler.plan(model), dryRun: false)
        XCTAssertEqual(again.changes.map(\.path), ["/etc/containers/certs.d/mirror.example:5000/ca.crt"])
        XCTAssertTrue(try String(contentsOfFile: root.path("/etc/containers/certs.d/mirror.example:5000/ca.crt"), encoding: .utf8).hasSuffix(rotated))
        // Credentials gone: the auth file is removed, shown as a secret.
        model.credentials = []
        let removed = reconciler.apply(reconciler.plan(model), dryRun: false)
        XCTAssertEqual(removed.changes.filter { $0.kind == .removed }.map(\.path), [CRIOAuthRenderer.authFile])
        XCTAssertEqual(removed.changes.first?.secret, true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path(CRIOAuthRenderer.authFile)))
    }

    func testAdminFilesAreNotOverwritten() throws {
        try write("/pki/ca.pem", cert)
        try write("/etc/containers/certs.d/mirror.example:5000/ca.crt", "the admin's own CA\n")
        var settings = AgentSettings()
        settings.runtimes = .explicit([.crio])
        let reconciler = Reconciler(root: root, settings: settings)
        let outcome = reconciler.apply(reconciler.plan(model(mirrorTLS: TLSSettings(caFiles: ["/pki/ca.pem"]))), dryRun: false)
        XCTAssertFalse(outcome.changes.contains { $0.path.hasSuffix("ca.crt") })
        XCTAssertTrue(outcome.warnings.contains { $0.message.contains("was not written by mirror-agent") })
        XCTAssertEqual(try String(contentsOfFile: root.path("/etc/containers/certs.d/mirror.example:5000/ca.crt"), encoding: .utf8), "the admin's own CA\n")
    }
}
