import DesiredState
import Diagnostics
import RuntimeWriters
import XCTest

/// Issue 19 item 8: skip-verify becomes CRI-O's `insecure = true`, which also allows plain HTTP;
/// the user is told so.
final class CRIOInsecureWarningTests: XCTestCase {
    func render(_ text: String) -> RenderResult {
        let loaded = DesiredStateLoader.load(text: text, file: "/etc/mirror-agent/mirrors.yaml", root: HostRoot("/nonexistent-root"))
        XCTAssertTrue(loaded.isValid, "\(loaded.diagnostics.errors)")
        return CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf", root: HostRoot("/nonexistent-root")).render(loaded.model)
    }

    func testSkipVerifyOnAMirrorWarnsThatItAlsoAllowsPlainHTTP() throws {
        let result = render("""
            apiVersion: mirror-agent/v1
            kind: MirrorSet
            spec:
              registries:
                - source: docker.io
                  mirrors:
                    - url: https://m.example
                      tls: {insecureSkipVerify: true}
            """)
        let file = try XCTUnwrap(result.files.first)
        XCTAssertTrue(file.contents.contains("insecure = true"))
        XCTAssertEqual(result.warnings.map(\.description), [
            "/etc/mirror-agent/mirrors.yaml:7:11: warning: insecureSkipVerify for mirror https://m.example becomes CRI-O's insecure = true, which also lets CRI-O fall back to plain HTTP for it (containers-registries.conf has no verify-only switch)",
        ])
    }

    func testSkipVerifyOnTheSourceWarnsToo() {
        let result = render("""
            apiVersion: mirror-agent/v1
            kind: MirrorSet
            spec:
              registries:
                - source: r.example
                  sourceTLS: {insecureSkipVerify: true}
                  mirrors: [https://m.example]
            """)
        XCTAssertEqual(result.warnings.count, 1, "\(result.warnings)")
        XCTAssertTrue(result.warnings.first?.message.contains("also lets CRI-O fall back to plain HTTP") ?? false)
    }

    func testAPlainHTTPMirrorNeedsNoSuchWarning() {
        let result = render("mirrors:\n  docker.io:\n    endpoint: [\"http://m.example\"]\n")
        XCTAssertEqual(result.warnings, [])
    }

    /// A hosts.toml carrying an Authorization header is not world-readable.
    func testAHostsFileWithACredentialHeaderIsRootsAlone() {
        func hostsMode(_ header: String) -> UInt32? {
            let loaded = DesiredStateLoader.load(text: """
                apiVersion: mirror-agent/v1
                kind: MirrorSet
                spec:
                  registries:
                    - source: docker.io
                      mirrors:
                        - url: https://m.example
                          headers: {\(header): "Bearer t0k3n"}
                """, file: "/etc/mirror-agent/mirrors.yaml", root: HostRoot("/nonexistent-root"))
            return ContainerdHostsRenderer(hostsDirectory: "/etc/containerd/certs.d", root: HostRoot("/nonexistent-root")).render(loaded.model).files.first?.mode
        }
        XCTAssertEqual(hostsMode("Authorization"), 0o600)
        XCTAssertEqual(hostsMode("X-Mirror-Client"), 0o644)
    }
}
