import DesiredState
import Diagnostics
import RuntimeWriters
import TOMLKit
import XCTest

/// Rendered files parsed back with a real TOML parser: every value comes back as it went in, so
/// no host, path or header can inject a key, a table or a line.
final class TOMLRoundTripTests: XCTestCase {
    let hostile = [
        "quote\" = true\n[host.\"evil\"]", "back\\slash\\", "ünïcødé ✓ 日本", "tab\tand\u{1}control", "line\r\nbreak", "'single'",
    ]

    func model(policy: SourcePolicy = .allowContactingSource) -> MirrorModel {
        let tls = TLSSettings(caFiles: ["/etc/pki/\(hostile[0]).pem", "/etc/pki/\(hostile[2]).pem"], clientCertificate: "/c/\(hostile[1])", clientKey: "/k/\(hostile[5])", skipVerify: true)
        let mirrors = [
            MirrorEndpoint(scheme: .https, host: "m1.example:5000", path: "/ns/sub", tls: tls, headers: hostile.enumerated().map { HTTPHeader(name: "X-H\($0.offset)", values: [$0.element, "second"]) }),
            MirrorEndpoint(scheme: .http, host: "[::1]:5000", capabilities: [.pull]),
        ]
        return MirrorModel(registries: [Registry(source: .host("docker.io"), mirrors: mirrors, sourcePolicy: policy)])
    }

    func testHostsTomlParsesBackToTheModel() throws {
        for policy in [SourcePolicy.allowContactingSource, .neverContactSource] {
            let files = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "2.1.0")).render(model(policy: policy)).files
            XCTAssertEqual(files.map(\.relativePath), ["docker.io/hosts.toml"])
            let table = try TOMLTable(string: files[0].contents)
            let hosts = try XCTUnwrap(table["host"]?.table)
            let first = try XCTUnwrap(hosts["https://m1.example:5000/v2/ns/sub"]?.table)
            XCTAssertEqual(first["override_path"]?.bool, true)
            XCTAssertEqual(first["skip_verify"]?.bool, true)
            XCTAssertEqual(first["capabilities"]?.array?.compactMap(\.string), ["pull", "resolve"])
            XCTAssertEqual(first["ca"]?.array?.compactMap(\.string), ["/etc/pki/\(hostile[0]).pem", "/etc/pki/\(hostile[2]).pem"])
            XCTAssertEqual(first["client"]?.array?.first?.array?.compactMap(\.string), ["/c/\(hostile[1])", "/k/\(hostile[5])"])
            let header = try XCTUnwrap(first["header"]?.table)
            for (index, value) in hostile.enumerated() {
                XCTAssertEqual(header["X-H\(index)"]?.array?.compactMap(\.string), [value, "second"])
            }
            XCTAssertNil(hosts["evil"], "no injected table")
            switch policy {
            case .allowContactingSource:
                XCTAssertEqual(table["server"]?.string, "https://registry-1.docker.io")
                XCTAssertEqual(hosts["http://[::1]:5000"]?.table?["capabilities"]?.array?.compactMap(\.string), ["pull"])
            case .neverContactSource:
                // The last mirror is the server: nothing falls back to docker.io.
                XCTAssertEqual(table["server"]?.string, "http://[::1]:5000")
                XCTAssertEqual(table["capabilities"]?.array?.compactMap(\.string), ["pull"])
                XCTAssertNil(hosts["http://[::1]:5000"])
            }
        }
    }

    func testSingleNeverContactMirrorKeepsAHostTable() throws {
        let model = MirrorModel(registries: [
            Registry(source: .host("ghcr.io"), mirrors: [MirrorEndpoint(scheme: .http, host: "127.0.0.1:5000")], sourcePolicy: .neverContactSource)
        ])
        let table = try TOMLTable(string: ContainerdHostsRenderer(hostsDirectory: "/h").render(model).files[0].contents)
        XCTAssertEqual(table["server"]?.string, "http://127.0.0.1:5000")
        XCTAssertNotNil(table["host"]?.table?["http://127.0.0.1:5000"], "containerd 1.6 ignores a hosts.toml without a [host] table")
    }

    func testCRIODropInParsesBack() throws {
        let model = MirrorModel(registries: [
            Registry(
                source: .repository(host: "quay.io", path: "org/app"),
                mirrors: [
                    MirrorEndpoint(scheme: .http, host: "m.example:5000", path: "/mirror/app", pullFrom: .digestOnly),
                    MirrorEndpoint(scheme: .https, host: "n.example", pullFrom: .tagOnly, tls: TLSSettings(skipVerify: true)),
                    MirrorEndpoint(scheme: .https, host: "o.example"),
                ], sourcePolicy: .neverContactSource),
            Registry(source: .wildcardDomain("corp.example"), mirrors: [MirrorEndpoint(scheme: .https, host: "p.example")]),
        ])
        let files = CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf").render(model).files
        XCTAssertEqual(files.map(\.path), ["/etc/containers/registries.conf.d/99-mirror-agent.conf"])
        let registries = try XCTUnwrap(TOMLTable(string: files[0].contents)["registry"]?.array).compactMap(\.table)
        XCTAssertEqual(registries.map { $0["prefix"]?.string }, ["quay.io/org/app", "*.corp.example"])
        XCTAssertEqual(registries[0]["location"]?.string, "quay.io/org/app")
        XCTAssertEqual(registries[0]["blocked"]?.bool, true)
        XCTAssertNil(registries[1]["location"], "a wildcard prefix takes no location")
        let mirrors = try XCTUnwrap(registries[0]["mirror"]?.array).compactMap(\.table)
        XCTAssertEqual(mirrors.map { $0["location"]?.string }, ["m.example:5000/mirror/app", "n.example", "o.example"])
        XCTAssertEqual(mirrors.map { $0["insecure"]?.bool }, [true, true, false], "each mirror states its own insecure")
        XCTAssertEqual(mirrors.map { $0["pull-from-mirror"]?.string }, ["digest-only", "tag-only", nil])
        XCTAssertFalse(files[0].contents.contains("mirror-by-digest-only"))
    }

    func testUnexpressibleSourcesAreSkippedWithTheirPlace() {
        let place = SourceLocation(file: "/etc/mirror-agent/mirrors.yaml", line: 4, column: 3)
        let model = MirrorModel(registries: [
            Registry(source: .repository(host: "quay.io", path: "org"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example")], origins: [place]),
            Registry(
                source: .host("quay.io"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example")],
                rewrites: [RewriteRule(pattern: "^a/(.*)", replacement: "b/$1", location: place)], origins: [place]),
        ])
        let result = ContainerdHostsRenderer(hostsDirectory: "/h").render(model)
        XCTAssertEqual(result.files, [])
        XCTAssertEqual(result.skipped.map(\.source), ["quay.io/org", "quay.io"])
        XCTAssertEqual(result.warnings.map { $0.location }, [place, place])
        XCTAssertTrue(result.warnings[0].description.hasPrefix("/etc/mirror-agent/mirrors.yaml:4:3: warning: quay.io/org skipped for containerd"))
    }

    func testIPv6MirrorsAreLeftOutForContainerd1() {
        let model = MirrorModel(registries: [
            Registry(source: .host("docker.io"), mirrors: [MirrorEndpoint(scheme: .http, host: "[::1]:5000"), MirrorEndpoint(scheme: .https, host: "m.example")])
        ])
        let old = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "1.6.20")).render(model)
        XCTAssertFalse(old.files[0].contents.contains("[::1]"))
        XCTAssertTrue(old.warnings[0].message.contains("cannot read an IPv6 address"))
        let new = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "2.0.0")).render(model)
        XCTAssertTrue(new.files[0].contents.contains("[host.\"http://[::1]:5000\"]"))
    }

    func testPortDirectoryIsTheOneContainerdLooksUpFirst() {
        XCTAssertEqual(ContainerdHostsRenderer.directoryName(for: "registry.example:5000"), "registry.example_5000_")
        XCTAssertEqual(ContainerdHostsRenderer.lookupOrder(for: "registry.example:5000"), ["registry.example_5000_", "registry.example:5000", "_default"])
        XCTAssertEqual(ContainerdHostsRenderer.directoryName(for: "docker.io"), "docker.io")
        XCTAssertEqual(ContainerdHostsRenderer.directoryName(for: "[::1]:5000"), "[::1]_5000_")
    }

    func testDialTimeoutOnlyWhereSupported() throws {
        let model = MirrorModel(registries: [Registry(source: .host("docker.io"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example")])])
        let old = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "1.6.20~ds1"), dialTimeout: "200ms").render(model)
        XCTAssertFalse(old.files[0].contents.contains("dial_timeout"))
        XCTAssertEqual(old.warnings.count, 1)
        let new = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "v2.1.3"), dialTimeout: "200ms").render(model)
        XCTAssertEqual(try TOMLTable(string: new.files[0].contents)["host"]?.table?["https://m.example"]?.table?["dial_timeout"]?.string, "200ms")
        XCTAssertTrue(ContainerdFeatures(version: "2.0.7").dialTimeout)
        XCTAssertFalse(ContainerdFeatures(version: "2.0.6").dialTimeout)
        XCTAssertFalse(ContainerdFeatures(version: "1.7.27").dialTimeout)
    }
}
