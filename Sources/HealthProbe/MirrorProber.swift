import AsyncHTTPClient
import DesiredState
import Foundation
import NIOCore
import NIOSSL

/// How probes are made.
public struct ProbeSettings: Sendable, Equatable {
    public var connectTimeout: Duration
    public var timeout: Duration
    /// Probes in flight at once. A round over many endpoints takes about one timeout as long as
    /// this is not far below the number of endpoints that hang.
    public var concurrency: Int

    public init(connectTimeout: Duration = .seconds(2), timeout: Duration = .seconds(5), concurrency: Int = 256) {
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.concurrency = concurrency
    }
}

/// One probe's outcome.
public struct ProbeResult: Sendable, Equatable, Codable {
    public var url: String
    public var registries: [String]
    /// 200 and 401 (a registry that wants credentials is alive) mean up; anything else, down.
    public var up: Bool
    public var status: Int?
    public var latencySeconds: Double
    /// Why it is down: "HTTP 500", "connection refused", "timed out after 5s", "TLS: ...".
    public var error: String?
    public var checkedAt: Date

    public init(url: String, registries: [String], up: Bool, status: Int?, latencySeconds: Double, error: String?, checkedAt: Date) {
        self.url = url
        self.registries = registries
        self.up = up
        self.status = status
        self.latencySeconds = latencySeconds
        self.error = error
        self.checkedAt = checkedAt
    }
}

/// Probes mirror endpoints with `GET <api root>/` over async-http-client, each with its own TLS
/// settings (CA file, client certificate, skip-verify).
public final class MirrorProber: Sendable {
    let client: HTTPClient
    public let settings: ProbeSettings

    public init(settings: ProbeSettings = ProbeSettings()) {
        self.settings = settings
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .nanoseconds(Self.nanoseconds(settings.connectTimeout)), read: .nanoseconds(Self.nanoseconds(settings.timeout)))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        // A probe answers "is it up now": a refused connection is an answer, not something to retry.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Must be called once done (async-http-client requires an orderly shutdown).
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Probes every target, at most `settings.concurrency` at once; results in target order.
    public func probe(_ targets: [ProbeTarget]) async -> [ProbeResult] {
        var results = [ProbeResult?](repeating: nil, count: targets.count)
        await withTaskGroup(of: (Int, ProbeResult).self) { group in
            var next = 0
            func startNext() {
                guard next < targets.count else { return }
                let index = next
                let target = targets[index]
                next += 1
                group.addTask { (index, await self.probe(target)) }
            }
            for _ in 0..<min(max(1, settings.concurrency), targets.count) { startNext() }
            for await (index, result) in group {
                results[index] = result
                startNext()
            }
        }
        return results.compactMap { $0 }
    }

    public func probe(_ target: ProbeTarget) async -> ProbeResult {
        let start = ContinuousClock.now
        var result = ProbeResult(url: target.url, registries: target.registries, up: false, status: nil, latencySeconds: 0, error: nil, checkedAt: Date())
        do {
            var request = HTTPClientRequest(url: target.url)
            request.method = .GET
            request.headers.add(name: "User-Agent", value: "mirror-agent-probe")
            request.headers.add(name: "Docker-Distribution-API-Version", value: "registry/2.0")
            if target.url.hasPrefix("https://") { request.tlsConfiguration = try Self.tls(target.tls) }
            let response = try await client.execute(request, timeout: .nanoseconds(Self.nanoseconds(settings.timeout)))
            // Drain a little of the body so the connection can be reused; the status is the answer.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            result.status = Int(response.status.code)
            result.up = response.status.code == 200 || response.status.code == 401
            if !result.up { result.error = "HTTP \(response.status.code)" }
        } catch {
            result.error = Self.reason(error, settings: settings, https: target.url.hasPrefix("https://"))
        }
        let elapsed = ContinuousClock.now - start
        result.latencySeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return result
    }

    /// The mirror's own TLS settings, as containerd applies them: the system roots plus its CA
    /// files, its client certificate, or no verification at all.
    ///
    /// The files are read here, with the agent's one safe reader (`O_NONBLOCK`, a regular file,
    /// at most 1 MiB), never by BoringSSL's own `fopen`: a FIFO or a device in place of a CA file
    /// must not block the probe outside its timeout.
    static func tls(_ settings: TLSSettings) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if settings.skipVerify { tls.certificateVerification = .none }
        if !settings.caFiles.isEmpty {
            var roots: [NIOSSLCertificate] = []
            for file in settings.caFiles { roots += try NIOSSLCertificate.fromPEMBytes(try readTLSFile(file)) }
            tls.additionalTrustRoots = [.certificates(roots)]
        }
        if let cert = settings.clientCertificate, let key = settings.clientKey {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(try readTLSFile(cert)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: try readTLSFile(key), format: .pem))
        }
        return tls
    }

    struct TLSFileError: Error, CustomStringConvertible {
        var description: String
    }

    static func readTLSFile(_ path: String) throws -> [UInt8] {
        switch FileSystem.read(path, limit: 1 << 20) {
        case .success(let bytes): return bytes
        case .failure(.missing): throw TLSFileError(description: "TLS files: \(path) does not exist")
        case .failure(.notRegularFile): throw TLSFileError(description: "TLS files: \(path) is not a regular file")
        case .failure(.tooLarge): throw TLSFileError(description: "TLS files: \(path) is larger than 1 MiB")
        case .failure(.unsafe(let why)), .failure(.system(let why)): throw TLSFileError(description: "TLS files: \(path): \(why)")
        }
    }

    static func reason(_ error: Error, settings: ProbeSettings, https: Bool = false) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout: return "timed out after \(settings.timeout) (no answer)"
            case .connectTimeout: return "connect timed out after \(settings.connectTimeout)"
            case .remoteConnectionClosed:
                // Over TLS 1.3 a server that rejects the client's certificate (or its absence)
                // closes the connection right after the handshake.
                return https ? "TLS: the mirror closed the connection before answering (does it require a client certificate?)" : "connection closed by the mirror"
            default: break
            }
            if "\(error)".contains("deadline") || "\(error)".contains("Timeout") { return "timed out after \(settings.timeout)" }
        }
        if let error = error as? TLSFileError { return error.description }
        let described = "\(error)"
        if described.contains("CERTIFICATE_VERIFY_FAILED") { return "TLS: certificate verify failed (is the mirror's CA configured?)" }
        if let error = error as? NIOSSLError { return "TLS: \(error)" }
        if let error = error as? BoringSSLError { return "TLS: \(error)" }
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("connectionRefused") || text.contains("ECONNREFUSED") { return "connection refused" }
        if text.lowercased().contains("ssl") || text.lowercased().contains("tls") || text.contains("certificate") { return "TLS: \(text)" }
        if text.contains("NIOFileHandle") || text.contains("No such file") { return "TLS files: \(text)" }
        return text
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
