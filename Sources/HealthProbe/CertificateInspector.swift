#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOPosix
import NIOSSL

/// A second look at an HTTPS mirror, when the first probe's error does not say enough:
/// - BoringSSL reports only CERTIFICATE_VERIFY_FAILED, so this handshake, which accepts any
///   chain, reads the validity dates of the certificate the mirror presents;
/// - async-http-client reports a TLS handshake that never ends as a connect timeout or a
///   deadline, so this tells "no TCP connection" from "connected, no TLS answer" from "TLS
///   answered (then no HTTP answer)".
/// Nothing is sent over it beyond the TLS client hello.
enum CertificateInspector {
    static func inspect(url: String, timeout: Duration) async -> ProbeFailureMapping.Handshake {
        guard let parsed = URL(string: url), let host = parsed.host else { return .unknown }
        let port = parsed.port ?? 443
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let isIP = (try? SocketAddress(ipAddress: bare, port: 0)) != nil
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates([])
        guard let context = try? NIOSSLContext(configuration: tls) else { return .unknown }
        let nanos = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let loop = ProbeEventLoop.group.next()
        let found = loop.makePromise(of: ProbeFailureMapping.Handshake.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(nanos))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: isIP ? nil : bare,
                        customVerificationCallback: { certificates, promise in
                            if let leaf = certificates.first {
                                found.succeed(
                                    .answered(
                                        notValidBefore: Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore)),
                                        notValidAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))))
                            } else {
                                found.succeed(.answered(notValidBefore: nil, notValidAfter: nil))
                            }
                            // Refuse it anyway: this connection is only for looking.
                            promise.succeed(.failed)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let start = NIODeadline.now()
        // Every path completes the promise (a later completion is a no-op; a leaked one traps).
        defer { found.succeed(.unknown) }
        do {
            let channel = try await bootstrap.connect(host: bare, port: port).get()
            let left = max(Int64(0), nanos - (NIODeadline.now() - start).nanoseconds)
            let deadline = loop.scheduleTask(in: .nanoseconds(left)) { found.succeed(.connectedNoTLSAnswer) }
            let outcome = try await found.futureResult.get()
            deadline.cancel()
            try? await channel.close()
            return outcome
        } catch let error as ChannelError {
            if case .connectTimeout = error { return .noConnection }
            return .unknown
        } catch {
            return .unknown
        }
    }
}
