import AsyncHTTPClient
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// Why a probe did not get a registry answer, in words an admin can act on. The same text is
/// used in the probe table, the journal, `STATUS=`, `mirror-agent status` and the metrics (as
/// `code`).
///
/// Causes on this node (`isLocal`) are never held against the mirror: a missing trust store or
/// an unreadable CA file says nothing about whether the mirror is up.
public enum ProbeFailure: Sendable, Equatable {
    case connectionRefused
    case noRoute
    case nameNotResolved(host: String)
    case connectTimeout(Duration)
    case tlsHandshakeTimeout(Duration)
    case answerTimeout(Duration)
    case connectionClosed
    case notTLS
    case tlsUnknownCA
    case tlsNameMismatch
    case tlsExpired
    case tlsNotYetValid
    case tlsClientCertificateRequired
    case tlsClientCertificateRejected(alert: String)
    case tlsHandshake(String)
    case notARegistry(status: Int)
    case other(String)
    // On this node.
    case noTrustStore(searched: [String])
    case unreadableFile(path: String, reason: String)
    case tlsSetup(String)

    /// A stable name for the cause (metrics label, JSON).
    public var code: String {
        switch self {
        case .connectionRefused: "connection-refused"
        case .noRoute: "no-route"
        case .nameNotResolved: "name-not-resolved"
        case .connectTimeout: "connect-timeout"
        case .tlsHandshakeTimeout: "tls-handshake-timeout"
        case .answerTimeout: "answer-timeout"
        case .connectionClosed: "connection-closed"
        case .notTLS: "not-tls"
        case .tlsUnknownCA: "tls-unknown-ca"
        case .tlsNameMismatch: "tls-name-mismatch"
        case .tlsExpired: "tls-expired"
        case .tlsNotYetValid: "tls-not-yet-valid"
        case .tlsClientCertificateRequired: "tls-client-certificate-required"
        case .tlsClientCertificateRejected: "tls-client-certificate-rejected"
        case .tlsHandshake: "tls-handshake"
        case .notARegistry: "not-a-registry"
        case .other: "other"
        case .noTrustStore: "node-no-trust-store"
        case .unreadableFile: "node-unreadable-file"
        case .tlsSetup: "node-tls-setup"
        }
    }

    /// True when the failure is on this node, not the mirror's.
    public var isLocal: Bool {
        switch self {
        case .noTrustStore, .unreadableFile, .tlsSetup: true
        default: false
        }
    }

    /// "2s", "1.5s", "500ms".
    static func short(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        if ms > 1000 { return formatDouble("%.1fs", Double(ms) / 1000) }
        return "\(ms)ms"
    }

    public var text: String {
        switch self {
        case .connectionRefused: return "connection refused"
        case .noRoute: return "no route to host"
        case .nameNotResolved(let host): return "name not resolved: \(host)"
        case .connectTimeout(let d): return "timed out connecting (no TCP answer within \(Self.short(d)))"
        case .tlsHandshakeTimeout(let d): return "timed out in the TLS handshake (connected, no TLS answer within \(Self.short(d)))"
        case .answerTimeout(let d): return "timed out waiting for an answer (connected, no HTTP answer within \(Self.short(d)))"
        case .connectionClosed: return "connection closed by the mirror without an answer"
        case .notTLS: return "TLS handshake failed: the mirror does not speak TLS (plain HTTP?)"
        case .tlsUnknownCA: return "TLS handshake failed: unknown CA (the mirror's certificate is not signed by a trusted CA)"
        case .tlsNameMismatch: return "TLS handshake failed: name mismatch (the certificate is not valid for this host)"
        case .tlsExpired: return "TLS handshake failed: certificate expired"
        case .tlsNotYetValid: return "TLS handshake failed: certificate not yet valid"
        case .tlsClientCertificateRequired: return "TLS handshake failed: client certificate required"
        case .tlsClientCertificateRejected(let alert): return "TLS handshake failed: the mirror rejected the client certificate (\(alert))"
        case .tlsHandshake(let reason): return "TLS handshake failed: \(reason)"
        case .notARegistry(let status): return "HTTP \(status): not a registry answer"
        case .other(let text): return text
        case .noTrustStore(let searched):
            return "node configuration error: no system trust store (none of \(searched.joined(separator: ", ")); install ca-certificates)"
        case .unreadableFile(let path, let reason): return "node configuration error: cannot read \(path): \(reason)"
        case .tlsSetup(let reason): return "node configuration error: TLS setup failed on this node: \(reason)"
        }
    }
}

/// The mapping from what the transport threw (async-http-client, NIO, NIOSSL) to a cause. Pure:
/// no I/O, no lookup; the facts it needs beyond the error are passed in.
public enum ProbeFailureMapping {
    public struct Context: Sendable, Equatable {
        public var connectTimeout: Duration
        public var timeout: Duration
        /// Whether this probe presented a client certificate (a TLS alert about certificates
        /// then means ours was rejected, not that one is missing).
        public var sentClientCertificate: Bool

        public init(connectTimeout: Duration, timeout: Duration, sentClientCertificate: Bool = false) {
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.sentClientCertificate = sentClientCertificate
        }
    }

    public static func failure(for error: Error, _ context: Context) -> ProbeFailure {
        if let error = error as? ProbeLocalError { return error.failure }
        if let error = error as? NIOConnectionError {
            // Happy eyeballs: the connection attempts' errors, else the resolver's.
            if let first = error.connectionErrors.first { return failure(for: first.error, context) }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return failure(for: dns, context) }
            return .nameNotResolved(host: error.host)
        }
        if let error = error as? SocketAddressError.UnknownHost { return .nameNotResolved(host: error.host) }
        if let error = error as? SocketAddressError {
            if case .unknown(let host, _) = error { return .nameNotResolved(host: host) }
            return .other("\(error)")
        }
        if let error = error as? IOError { return failure(errno: error.errnoCode) ?? .other("\(error)") }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout: return .connectTimeout(context.connectTimeout)
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return .connectionClosed
            default: return .other("\(error)")
            }
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return .connectTimeout(context.connectTimeout)
            case .tlsHandshakeTimeout: return .tlsHandshakeTimeout(context.connectTimeout)
            case .deadlineExceeded, .readTimeout: return .answerTimeout(context.timeout)
            case .remoteConnectionClosed: return .connectionClosed
            default: return .other("\(error)")
            }
        }
        if let error = error as? NIOSSLExtraError {
            if error == .failedToValidateHostname { return .tlsNameMismatch }
            return .tlsHandshake("\(error)")
        }
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(let inner): return failure(boringSSL: inner, context)
            case .uncleanShutdown: return .connectionClosed
            case .noSuchFilesystemObject, .failedToLoadCertificate, .failedToLoadPrivateKey: return .tlsSetup("\(error)")
            default: return .tlsHandshake("\(error)")
            }
        }
        if let error = error as? BoringSSLError { return failure(boringSSL: error, context) }
        return .other("\(error)")
    }

    static func failure(boringSSL error: BoringSSLError, _ context: Context) -> ProbeFailure {
        switch error {
        case .sslError(let stack), .unknownError(let stack):
            return tlsFailure(reasons: stack.map(\.description), context) ?? .tlsHandshake("\(error)")
        case .zeroReturn, .syscallError: return .connectionClosed
        default: return .tlsHandshake("\(error)")
        }
    }

    /// A connect(2) errno.
    public static func failure(errno code: CInt) -> ProbeFailure? {
        switch code {
        case ECONNREFUSED: .connectionRefused
        case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: .noRoute
        case ETIMEDOUT: nil
        case ECONNRESET, EPIPE: .connectionClosed
        default: nil
        }
    }

    /// BoringSSL's error stack (`error:...:SSL routines:OPENSSL_internal:REASON`) to a cause.
    /// Alerts the client *received* name what the mirror disliked; CERTIFICATE_VERIFY_FAILED is
    /// our own verdict on the mirror's certificate (refined by `refineVerifyFailure`).
    public static func tlsFailure(reasons: [String], _ context: Context) -> ProbeFailure? {
        let names = reasons.map { text -> String in
            // "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at file:line"
            let head = text.split(separator: " at ").first.map(String.init) ?? text
            return head.split(separator: ":").last.map { String($0) } ?? head
        }
        for name in names {
            switch name {
            case "CERTIFICATE_VERIFY_FAILED": return .tlsUnknownCA
            case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNEXPECTED_RECORD", "RECORD_TOO_LARGE": return .notTLS
            case "TLSV1_CERTIFICATE_REQUIRED", "TLSV1_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE":
                return .tlsClientCertificateRequired
            case "SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "TLSV1_ALERT_ACCESS_DENIED",
                "TLSV1_ALERT_DECRYPT_ERROR":
                let alert = alertName(name)
                return context.sentClientCertificate ? .tlsClientCertificateRejected(alert: alert) : .tlsClientCertificateRequired
            case "SSLV3_ALERT_HANDSHAKE_FAILURE":
                // TLS 1.2 servers answer a missing client certificate this way.
                return context.sentClientCertificate ? .tlsHandshake("the mirror refused the handshake (handshake failure alert)") : .tlsClientCertificateRequired
            case "KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED", "NO_PRIVATE_KEY_ASSIGNED": return .tlsSetup(name)
            default: continue
            }
        }
        if let name = names.first(where: { $0.contains("ALERT") }) { return .tlsHandshake("the mirror sent \(alertName(name))") }
        if let name = names.first { return .tlsHandshake(name) }
        return nil
    }

    /// CERTIFICATE_VERIFY_FAILED says only that the chain did not verify. With the validity of
    /// the certificate the mirror presented (read by a second, unverified handshake), it names
    /// the reason: expired, not yet valid, or (dates fine) not signed by a trusted CA.
    public static func refineVerifyFailure(notValidBefore: Date?, notValidAfter: Date?, now: Date) -> ProbeFailure {
        if let after = notValidAfter, after < now { return .tlsExpired }
        if let before = notValidBefore, before > now { return .tlsNotYetValid }
        return .tlsUnknownCA
    }

    /// What a second, unverified handshake with the mirror showed (`CertificateInspector`).
    public enum Handshake: Sendable, Equatable {
        /// No TCP connection within the connect timeout.
        case noConnection
        /// Connected, but no TLS answer within the connect timeout.
        case connectedNoTLSAnswer
        /// The mirror answered the TLS hello with this certificate.
        case answered(notValidBefore: Date?, notValidAfter: Date?)
        /// The second look failed otherwise; the first error stands.
        case unknown
    }

    /// A timeout over HTTPS does not say which step hung (async-http-client bounds the TCP
    /// connect and the TLS handshake with one timer); the second handshake does.
    public static func refineTimeout(_ failure: ProbeFailure, handshake: Handshake, _ context: Context) -> ProbeFailure {
        switch (failure, handshake) {
        case (.connectTimeout, .connectedNoTLSAnswer), (.answerTimeout, .connectedNoTLSAnswer): return .tlsHandshakeTimeout(context.connectTimeout)
        case (.connectTimeout, .answered): return .answerTimeout(context.timeout)
        case (.answerTimeout, .noConnection): return .connectTimeout(context.connectTimeout)
        default: return failure
        }
    }

    static func alertName(_ reason: String) -> String {
        var name = reason
        for prefix in ["SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV1_"] where name.hasPrefix(prefix) {
            name = String(name.dropFirst(prefix.count))
            break
        }
        return String(name.lowercased().map { $0 == "_" ? " " : $0 }) + " alert"
    }
}

/// A failure found on this node before anything was sent to the mirror.
public struct ProbeLocalError: Error, Sendable {
    public var failure: ProbeFailure
    public init(_ failure: ProbeFailure) { self.failure = failure }
}
