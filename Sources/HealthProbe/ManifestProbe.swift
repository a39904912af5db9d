import AsyncHTTPClient
import DesiredState
import Foundation
import NIOHTTP1

/// One manifest request, as a runtime makes it (for `explain --probe`): the answer's status, or
/// why there was none, and how long it took. No credentials are sent.
public struct ManifestAnswer: Sendable, Equatable {
    public var status: Int?
    public var error: String?
    public var seconds: Double
}

extension MirrorProber {
    public func manifest(url: String, method: String, accept: [String], tls: TLSSettings) async -> ManifestAnswer {
        let start = ContinuousClock.now
        var answer = ManifestAnswer(status: nil, error: nil, seconds: 0)
        do {
            var request = HTTPClientRequest(url: url)
            request.method = HTTPMethod(rawValue: method)
            request.headers.add(name: "User-Agent", value: "mirror-agent-explain")
            request.headers.add(name: "Accept", value: accept.joined(separator: ", "))
            if url.hasPrefix("https://") { request.tlsConfiguration = try TrustMaterial(root: root).configuration(tls) }
            let response = try await client.execute(request, timeout: .nanoseconds(Self.nanoseconds(settings.timeout)))
            _ = try? await response.body.collect(upTo: 4 << 20)
            answer.status = Int(response.status.code)
        } catch {
            let context = ProbeFailureMapping.Context(connectTimeout: settings.connectTimeout, timeout: settings.timeout, sentClientCertificate: tls.clientCertificate != nil)
            answer.error = ProbeFailureMapping.failure(for: error, context).text
        }
        let elapsed = ContinuousClock.now - start
        answer.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return answer
    }
}
