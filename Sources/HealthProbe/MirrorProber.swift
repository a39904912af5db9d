import AsyncHTTPClient
import DesiredState
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
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
    /// What the endpoint is known by in reports (see `ProbeTarget.id`).
    public var id: String
    public var url: String
    public var registries: [String]
    /// 200 and 401 (a registry that wants credentials is alive) mean up; anything else, down.
    public var up: Bool
    public var status: Int?
    public var latencySeconds: Double
    /// Why it is not up, in words (`ProbeFailure.text`): "connection refused", "TLS handshake
    /// failed: unknown CA (...)", "HTTP 404: not a registry answer", ...
    public var error: String?
    /// The same as a stable code (`ProbeFailure.code`), for metrics and scripts.
    public var cause: String?
    /// The failure is on this node (no trust store, unreadable CA file...): the probe says
    /// nothing about the mirror, and never counts against it.
    public var local: Bool
    public var checkedAt: Date

    public init(
        id: String? = nil, url: String, registries: [String], up: Bool, status: Int?, latencySeconds: Double, error: String?, cause: String? = nil,
        local: Bool = false, checkedAt: Date
    ) {
        self.id = id ?? url
        self.url = url
        self.registries = registries
        self.up = up
        self.status = status
        self.latencySeconds = latencySeconds
        self.error = error
        self.cause = cause
        self.local = local
        self.checkedAt = checkedAt
    }

    public init(id: String? = nil, url: String, registries: [String], failure: ProbeFailure, status: Int? = nil, latencySeconds: Double = 0, checkedAt: Date) {
        self.init(
            id: id, url: url, registries: registries, up: false, status: status, latencySeconds: latencySeconds, error: failure.text,
            cause: failure.code, local: failure.isLocal, checkedAt: checkedAt)
    }
}

/// Probes mirror endpoints with `GET <api root>/` over async-http-client, each with its own TLS
/// settings (CA file, client certificate, skip-verify).
public final class MirrorProber: Sendable {
    let client: HTTPClient
    public let settings: ProbeSettings
    /// CA files, client certificates and the system trust store are read through this root.
    public let root: HostRoot

    public init(settings: ProbeSettings = ProbeSettings(), root: HostRoot) {
        self.settings = settings
        self.root = root
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .nanoseconds(Self.nanoseconds(settings.connectTimeout)), read: .nanoseconds(Self.nanoseconds(settings.timeout)))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        // A probe answers "is it up now": a refused connection is an answer, not something to retry.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .shared(ProbeEventLoop.group), configuration: configuration)
    }

    /// Must be called once done (async-http-client requires an orderly shutdown).
    public func shutdown() async {
        try? await client.shutdown()
    }

    /// Probes every target, at most `settings.concurrency` at once; results in target order.
    public func probe(_ targets: [ProbeTarget]) async -> [ProbeResult] {
        let trust = TrustMaterial(root: root)
        var results = [ProbeResult?](repeating: nil, count: targets.count)
        await withTaskGroup(of: (Int, ProbeResult).self) { group in
            var next = 0
            func startNext() {
                guard next < targets.count else { return }
                let index = next
                let target = targets[index]
                next += 1
                group.addTask { (index, await self.probe(target, trust: trust)) }
            }
            for _ in 0..<min(max(1, settings.concurrency), targets.count) { startNext() }
            for await (index, result) in group {
                results[index] = result
                startNext()
            }
        }
        return results.compactMap { $0 }
    }

    public func probe(_ target: ProbeTarget, trust: TrustMaterial? = nil) async -> ProbeResult {
        let start = ContinuousClock.now
        let https = target.url.hasPrefix("https://")
        var result = ProbeResult(id: target.id, url: target.url, registries: target.registries, up: false, status: nil, latencySeconds: 0, error: nil, checkedAt: Date())
        var failure: ProbeFailure?
        do {
            var request = HTTPClientRequest(url: target.url)
            request.method = .GET
            request.headers.add(name: "User-Agent", value: "mirror-agent-probe")
            request.headers.add(name: "Docker-Distribution-API-Version", value: "registry/2.0")
            if https { request.tlsConfiguration = try (trust ?? TrustMaterial(root: root)).configuration(target.tls) }
            // The connect timeout bounds the connection (TCP and TLS), the read timeout the wait
            // for an answer once connected; the overall deadline is their sum, so it never fires
            // first and hides which of the two it was.
            let deadline = Self.nanoseconds(settings.connectTimeout) + Self.nanoseconds(settings.timeout) + 100_000_000
            let response = try await client.execute(request, timeout: .nanoseconds(deadline))
            // Drain a little of the body so the connection can be reused; the status is the answer.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            result.status = Int(response.status.code)
            result.up = response.status.code == 200 || response.status.code == 401
            if !result.up { failure = .notARegistry(status: Int(response.status.code)) }
        } catch {
            let context = ProbeFailureMapping.Context(
                connectTimeout: settings.connectTimeout, timeout: settings.timeout, sentClientCertificate: target.tls.clientCertificate != nil)
            var mapped = ProbeFailureMapping.failure(for: error, context)
            switch mapped {
            case .tlsUnknownCA:
                if case .answered(let before, let after) = await CertificateInspector.inspect(url: target.url, timeout: settings.connectTimeout) {
                    mapped = ProbeFailureMapping.refineVerifyFailure(notValidBefore: before, notValidAfter: after, now: Date())
                }
            case .connectTimeout where https, .answerTimeout where https:
                mapped = ProbeFailureMapping.refineTimeout(mapped, handshake: await CertificateInspector.inspect(url: target.url, timeout: settings.connectTimeout), context)
            default:
                break
            }
            failure = mapped
        }
        if let failure {
            result.error = failure.text
            result.cause = failure.code
            result.local = failure.isLocal
        }
        let elapsed = ContinuousClock.now - start
        result.latencySeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return result
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
