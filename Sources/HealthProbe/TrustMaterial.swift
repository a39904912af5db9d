import DesiredState
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOSSL
import Synchronization

/// The certificates a probe round trusts and presents, all read through the host root with the
/// agent's own bounded reads (NIOSSL never opens a file itself: a missing or unreadable file is
/// then known to be ours, and named, before anything is sent to a mirror).
///
/// The system trust store is what containerd (Go's crypto/x509) and NIOSSL look for on Linux:
/// the first bundle file that exists. On Debian it is /etc/ssl/certs/ca-certificates.crt, built
/// by update-ca-certificates from the ca-certificates package and /usr/local/share/ca-certificates.
public struct TrustMaterial: Sendable {
    public static let systemBundles = [
        "/etc/ssl/certs/ca-certificates.crt",  // Debian, Ubuntu, Alpine, Arch
        "/etc/pki/tls/certs/ca-bundle.crt",  // Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",  // openSUSE
        "/etc/pki/tls/cacert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    static let fileLimit = 16 << 20

    public let root: HostRoot
    /// The system roots, or why there are none.
    public let system: Result<[NIOSSLCertificate], ProbeLocalError>
    /// The bundle found (host path), for reports.
    public let systemBundle: String?
    /// One configuration per distinct TLS settings in a round (they are built and checked once).
    private let cache = ConfigurationCache()

    public init(root: HostRoot) {
        self.root = root
        var found: (String, Result<[NIOSSLCertificate], ProbeLocalError>)?
        for bundle in Self.systemBundles {
            switch FileSystem.read(root.path(bundle), limit: Self.fileLimit) {
            case .failure(.missing): continue
            case .failure(let error):
                found = (bundle, .failure(ProbeLocalError(.unreadableFile(path: bundle, reason: Self.describe(error)))))
            case .success(let bytes):
                let certificates = (try? NIOSSLCertificate.fromPEMBytes(bytes)) ?? []
                found = (bundle, certificates.isEmpty
                    ? .failure(ProbeLocalError(.unreadableFile(path: bundle, reason: "the system trust store holds no certificate; run update-ca-certificates")))
                    : .success(certificates))
            }
            break
        }
        systemBundle = found?.0
        system = found?.1 ?? .failure(ProbeLocalError(.noTrustStore(searched: Array(Self.systemBundles.prefix(2)))))
    }

    /// The TLS configuration of one mirror, as containerd applies its hosts.toml: the system
    /// roots plus its own CA files (only its CA files when the node has no trust store, as Go
    /// does), its client certificate, or no verification at all.
    public func configuration(_ settings: TLSSettings) throws(ProbeLocalError) -> TLSConfiguration {
        if let cached = cache.get(settings) { return try cached.get() }
        let result = Result { () throws(ProbeLocalError) -> TLSConfiguration in try build(settings) }
        cache.put(settings, result)
        return try result.get()
    }

    func build(_ settings: TLSSettings) throws(ProbeLocalError) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if settings.skipVerify {
            tls.certificateVerification = .none
            tls.trustRoots = .certificates([])
        } else {
            var extra: [NIOSSLCertificate] = []
            for file in settings.caFiles { extra += try certificates(file) }
            switch system {
            case .success(let roots): tls.trustRoots = .certificates(roots + extra)
            case .failure(let error):
                // Without system roots a mirror with its own CA is still judged on it alone;
                // one that relies on the system roots cannot be judged at all.
                guard !extra.isEmpty else { throw error }
                tls.trustRoots = .certificates(extra)
            }
        }
        if let cert = settings.clientCertificate, let key = settings.clientKey {
            tls.certificateChain = try certificates(cert).map { .certificate($0) }
            let bytes = try read(key)
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: bytes, format: .pem))
            } catch {
                throw ProbeLocalError(.unreadableFile(path: key, reason: "not a PEM private key"))
            }
        }
        // Build it once here: a key that does not match its certificate is our error, not the mirror's.
        do {
            _ = try NIOSSLContext(configuration: tls)
        } catch {
            throw ProbeLocalError(.tlsSetup(Self.describe(sslSetup: error)))
        }
        return tls
    }

    func certificates(_ path: String) throws(ProbeLocalError) -> [NIOSSLCertificate] {
        let bytes = try read(path)
        let certificates = (try? NIOSSLCertificate.fromPEMBytes(bytes)) ?? []
        guard !certificates.isEmpty else { throw ProbeLocalError(.unreadableFile(path: path, reason: "no PEM certificate in it")) }
        return certificates
    }

    func read(_ path: String) throws(ProbeLocalError) -> [UInt8] {
        switch FileSystem.read(root.path(path), limit: Self.fileLimit) {
        case .success(let bytes): return bytes
        case .failure(let error): throw ProbeLocalError(.unreadableFile(path: path, reason: Self.describe(error)))
        }
    }

    static func describe(_ error: FileSystem.ReadError) -> String {
        switch error {
        case .missing: "no such file"
        case .notRegularFile: "not a regular file"
        case .tooLarge(let n): "too large (\(n) bytes)"
        case .unsafe(let why): why
        case .system(let text): text
        }
    }

    static func describe(sslSetup error: Error) -> String {
        if let error = error as? BoringSSLError, case .unknownError(let stack) = error,
            let name = ProbeFailureMapping.tlsFailure(reasons: stack.map(\.description), .init(connectTimeout: .zero, timeout: .zero))
        {
            if case .tlsSetup(let reason) = name { return reason == "KEY_VALUES_MISMATCH" ? "the client key does not match the client certificate" : reason }
        }
        return "\(error)"
    }
}

final class ConfigurationCache: Sendable {
    private let entries = Mutex<[TLSSettings: Result<TLSConfiguration, ProbeLocalError>]>([:])

    func get(_ key: TLSSettings) -> Result<TLSConfiguration, ProbeLocalError>? {
        entries.withLock { $0[key] }
    }

    func put(_ key: TLSSettings, _ value: Result<TLSConfiguration, ProbeLocalError>) {
        entries.withLock { $0[key] = value }
    }
}
