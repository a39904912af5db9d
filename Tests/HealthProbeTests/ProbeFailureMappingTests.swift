import AsyncHTTPClient
import Foundation
import HealthProbe
import NIOCore
import NIOSSL
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The transport error -> cause table. Each row feeds the error value the transport produces
/// (no socket, no lookup) and checks the cause, its code, its words, and whether it is ours.
final class ProbeFailureMappingTests: XCTestCase {
    let context = ProbeFailureMapping.Context(connectTimeout: .seconds(2), timeout: .seconds(5))

    struct Row {
        var name: String
        var error: Error
        var sentClientCertificate = false
        var expected: ProbeFailure
        var text: String
        var local = false
    }

    @available(*, deprecated)
    var rows: [Row] {
        [
            Row(name: "refused", error: IOError(errnoCode: ECONNREFUSED, reason: "connect"), expected: .connectionRefused, text: "connection refused"),
            Row(name: "no route", error: IOError(errnoCode: EHOSTUNREACH, reason: "connect"), expected: .noRoute, text: "no route to host"),
            Row(name: "network unreachable", error: IOError(errnoCode: ENETUNREACH, reason: "connect"), expected: .noRoute, text: "no route to host"),
            // What NIO's resolver fails a lookup with; fed here as a value, nothing is looked up.
            Row(
                name: "name not resolved", error: SocketAddressError.unknown(host: "mirror.invalid", port: 443),
                expected: .nameNotResolved(host: "mirror.invalid"), text: "name not resolved: mirror.invalid"),
            Row(name: "connect timeout", error: HTTPClientError.connectTimeout, expected: .connectTimeout(.seconds(2)), text: "timed out connecting (no TCP answer within 2s)"),
            Row(name: "channel connect timeout", error: ChannelError.connectTimeout(.seconds(2)), expected: .connectTimeout(.seconds(2)), text: "timed out connecting (no TCP answer within 2s)"),
            Row(
                name: "TLS handshake timeout", error: HTTPClientError.tlsHandshakeTimeout, expected: .tlsHandshakeTimeout(.seconds(2)),
                text: "timed out in the TLS handshake (connected, no TLS answer within 2s)"),
            Row(
                name: "answer timeout (deadline)", error: HTTPClientError.deadlineExceeded, expected: .answerTimeout(.seconds(5)),
                text: "timed out waiting for an answer (connected, no HTTP answer within 5s)"),
            Row(
                name: "answer timeout (read)", error: HTTPClientError.readTimeout, expected: .answerTimeout(.seconds(5)),
                text: "timed out waiting for an answer (connected, no HTTP answer within 5s)"),
            Row(name: "closed", error: HTTPClientError.remoteConnectionClosed, expected: .connectionClosed, text: "connection closed by the mirror without an answer"),
            Row(
                name: "name mismatch", error: NIOSSLExtraError.failedToValidateHostname, expected: .tlsNameMismatch,
                text: "TLS handshake failed: name mismatch (the certificate is not valid for this host)"),
            Row(
                name: "local: unreadable CA file", error: ProbeLocalError(.unreadableFile(path: "/etc/ca.crt", reason: "no such file")),
                expected: .unreadableFile(path: "/etc/ca.crt", reason: "no such file"), text: "node configuration error: cannot read /etc/ca.crt: no such file", local: true),
            Row(
                name: "local: NIOSSL could not load a file", error: NIOSSLError.failedToLoadCertificate, expected: .tlsSetup("failedToLoadCertificate"),
                text: "node configuration error: TLS setup failed on this node: failedToLoadCertificate", local: true),
        ]
    }

    @available(*, deprecated)
    func testEveryTransportErrorMapsToItsCause() {
        for row in rows {
            let context = ProbeFailureMapping.Context(connectTimeout: .seconds(2), timeout: .seconds(5), sentClientCertificate: row.sentClientCertificate)
            let failure = ProbeFailureMapping.failure(for: row.error, context)
            XCTAssertEqual(failure, row.expected, row.name)
            XCTAssertEqual(failure.text, row.text, row.name)
            XCTAssertEqual(failure.isLocal, row.local, row.name)
        }
    }

    /// BoringSSL's error stack as NIOSSL describes it, to a cause.
    func testTLSReasons() {
        func stack(_ reason: String) -> [String] { ["Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:\(reason) at /src/ssl/handshake.cc:320"] }
        let table: [(String, Bool, ProbeFailure, String)] = [
            ("CERTIFICATE_VERIFY_FAILED", false, .tlsUnknownCA, "TLS handshake failed: unknown CA (the mirror's certificate is not signed by a trusted CA)"),
            ("TLSV1_CERTIFICATE_REQUIRED", false, .tlsClientCertificateRequired, "TLS handshake failed: client certificate required"),
            ("SSLV3_ALERT_BAD_CERTIFICATE", false, .tlsClientCertificateRequired, "TLS handshake failed: client certificate required"),
            ("SSLV3_ALERT_HANDSHAKE_FAILURE", false, .tlsClientCertificateRequired, "TLS handshake failed: client certificate required"),
            ("TLSV1_ALERT_UNKNOWN_CA", true, .tlsClientCertificateRejected(alert: "unknown ca alert"), "TLS handshake failed: the mirror rejected the client certificate (unknown ca alert)"),
            ("WRONG_VERSION_NUMBER", false, .notTLS, "TLS handshake failed: the mirror does not speak TLS (plain HTTP?)"),
            ("TLSV1_ALERT_PROTOCOL_VERSION", false, .tlsHandshake("the mirror sent protocol version alert"), "TLS handshake failed: the mirror sent protocol version alert"),
        ]
        for (reason, sent, expected, text) in table {
            let context = ProbeFailureMapping.Context(connectTimeout: .seconds(2), timeout: .seconds(5), sentClientCertificate: sent)
            let failure = ProbeFailureMapping.tlsFailure(reasons: stack(reason), context)
            XCTAssertEqual(failure, expected, reason)
            XCTAssertEqual(failure?.text, text, reason)
            XCTAssertEqual(failure?.isLocal, false, reason)
        }
        XCTAssertEqual(ProbeFailureMapping.tlsFailure(reasons: stack("KEY_VALUES_MISMATCH"), context)?.isLocal, true, "a key that does not match is ours")
    }

    func testAVerifyFailureIsRefinedByTheCertificatesDates() {
        let now = Date(timeIntervalSince1970: 2_000_000_000)
        XCTAssertEqual(ProbeFailureMapping.refineVerifyFailure(notValidBefore: now - 86400 * 10, notValidAfter: now - 86400, now: now), .tlsExpired)
        XCTAssertEqual(ProbeFailure.tlsExpired.text, "TLS handshake failed: certificate expired")
        XCTAssertEqual(ProbeFailureMapping.refineVerifyFailure(notValidBefore: now + 86400, notValidAfter: now + 86400 * 10, now: now), .tlsNotYetValid)
        XCTAssertEqual(ProbeFailureMapping.refineVerifyFailure(notValidBefore: now - 86400, notValidAfter: now + 86400, now: now), .tlsUnknownCA)
        XCTAssertEqual(ProbeFailureMapping.refineVerifyFailure(notValidBefore: nil, notValidAfter: nil, now: now), .tlsUnknownCA)
    }

    func testAStatusThatIsNotARegistryAnswer() {
        XCTAssertEqual(ProbeFailure.notARegistry(status: 404).text, "HTTP 404: not a registry answer")
        XCTAssertEqual(ProbeFailure.notARegistry(status: 404).code, "not-a-registry")
    }

    func testTheNodeErrorsAreLocalAndNameTheTrustStore() {
        let failure = ProbeFailure.noTrustStore(searched: ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"])
        XCTAssertTrue(failure.isLocal)
        XCTAssertEqual(failure.code, "node-no-trust-store")
        XCTAssertTrue(failure.text.contains("no system trust store (none of /etc/ssl/certs/ca-certificates.crt"), failure.text)
        XCTAssertTrue(failure.text.contains("install ca-certificates"), failure.text)
    }
}

extension ProbeFailureMappingTests {
    /// async-http-client bounds the TCP connect and the TLS handshake with one timer; the second
    /// handshake's outcome says which step hung.
    func testAnHTTPSTimeoutIsRefinedByWhatTheSecondHandshakeSaw() {
        let connect = ProbeFailure.connectTimeout(.seconds(2)), answer = ProbeFailure.answerTimeout(.seconds(5))
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(connect, handshake: .connectedNoTLSAnswer, context), .tlsHandshakeTimeout(.seconds(2)))
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(answer, handshake: .connectedNoTLSAnswer, context), .tlsHandshakeTimeout(.seconds(2)))
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(connect, handshake: .noConnection, context), connect)
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(answer, handshake: .noConnection, context), connect)
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(connect, handshake: .answered(notValidBefore: nil, notValidAfter: nil), context), answer)
        XCTAssertEqual(ProbeFailureMapping.refineTimeout(answer, handshake: .unknown, context), answer)
    }
}
