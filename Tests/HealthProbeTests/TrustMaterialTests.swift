import DesiredState
import Foundation
import HealthProbe
import XCTest

/// Where the probes' certificates come from, in a scratch root: a missing trust store or CA file
/// is a node error (ProbeLocalError), never a probe of the mirror.
final class TrustMaterialTests: XCTestCase {
    /// A throwaway self-signed CA (generated once with openssl for this test; no key kept).
    static let pem = """
-----BEGIN CERTIFICATE-----
MIIBoDCCAUWgAwIBAgIUWeugbnw3kI6aVGBTsXtGaNb/AWEwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZbWlycm9yLWFnZW50IHVuaXQgdGVzdCBDQTAgFw0yNjEyMDEx
MjA1MzFaGA8yMTI2MTEwNzEyMDUzMVowJDEiMCAGA1UEAwwZbWlycm9yLWFnZW50
IHVuaXQgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABOA3q0dmbSIr
9C6r/w7zid7lG2w2rQqNzgre2zVQV8ugtT26V8QYl21b6LSPbZn7SX/I92sM5JJz
03pN/B5DaYOjUzBRMB0GA1UdDgQWBBSUPpt1NtcqZu2NdR7JvHoitOn/gTAfBgNV
HSMEGDAWgBSUPpt1NtcqZu2NdR7JvHoitOn/gTAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0kAMEYCIQDN667K5pv5dcr6404JSel90qwjvs0FHxAhujRYOgtr
rQIhALrS5YURfM16/8zQidhtEC0sQgeuRY6yPjVT+EnnVHan
-----END CERTIFICATE-----

"""

    var root: HostRoot!
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("trust-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        root = HostRoot(dir)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func put(_ hostPath: String, _ text: String) throws {
        let path = root.path(hostPath)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func localFailure(_ trust: TrustMaterial, _ tls: TLSSettings) -> ProbeFailure? {
        do {
            _ = try trust.configuration(tls)
            return nil
        } catch {
            return error.failure
        }
    }

    func testNoTrustStoreIsANodeErrorForMirrorsThatNeedIt() throws {
        let trust = TrustMaterial(root: root)
        XCTAssertNil(trust.systemBundle)
        let failure = localFailure(trust, TLSSettings())
        XCTAssertEqual(failure?.code, "node-no-trust-store")
        XCTAssertEqual(failure?.isLocal, true)
        XCTAssertNil(localFailure(trust, TLSSettings(skipVerify: true)), "skip-verify needs no roots")
        try put("/etc/mirror-agent/ca.crt", Self.pem)
        XCTAssertNil(localFailure(trust, TLSSettings(caFiles: ["/etc/mirror-agent/ca.crt"])), "its own CA is enough, as for containerd")
    }

    func testTheBundleIsReadThroughTheRoot() throws {
        try put("/etc/ssl/certs/ca-certificates.crt", Self.pem)
        let trust = TrustMaterial(root: root)
        XCTAssertEqual(trust.systemBundle, "/etc/ssl/certs/ca-certificates.crt")
        XCTAssertNil(localFailure(trust, TLSSettings()))
    }

    func testAnEmptyBundleOrAMissingCAFileIsNamed() throws {
        try put("/etc/ssl/certs/ca-certificates.crt", "")
        let trust = TrustMaterial(root: root)
        XCTAssertEqual(localFailure(trust, TLSSettings())?.text, "node configuration error: cannot read /etc/ssl/certs/ca-certificates.crt: the system trust store holds no certificate; run update-ca-certificates")
        try put("/etc/ssl/certs/ca-certificates.crt", Self.pem)
        XCTAssertEqual(
            localFailure(TrustMaterial(root: root), TLSSettings(caFiles: ["/etc/mirror-agent/missing.crt"]))?.text,
            "node configuration error: cannot read /etc/mirror-agent/missing.crt: no such file")
        try put("/etc/mirror-agent/garbage.crt", "not a certificate\n")
        XCTAssertEqual(
            localFailure(TrustMaterial(root: root), TLSSettings(caFiles: ["/etc/mirror-agent/garbage.crt"]))?.text,
            "node configuration error: cannot read /etc/mirror-agent/garbage.crt: no PEM certificate in it")
    }
}
