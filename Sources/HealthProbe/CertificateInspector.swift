import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A second look at a mirror whose certificate did not verify: BoringSSL reports only
/// CERTIFICATE_VERIFY_FAILED, so one more handshake, which accepts any chain, reads the
/// validity dates of the certificate the mirror presents. Nothing is sent over it.
enum CertificateInspector {
    struct Validity: Sendable {
        var notBefore: Date
        var notAfter: Date
    }

    static func leafValidity(url: String, timeout: Duration) async -> Validity? {
        guard let parsed = URL(string: url), let host = parsed.host else { return nil }
        let port = parsed.port ?? 443
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let isIP = (try? SocketAddress(ipAddress: bare, port: 0)) != nil
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates([])
        guard let context = try? NIOSSLContext(configuration: tls) else { return nil }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let found = loop.makePromise(of: Validity?.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: isIP ? nil : bare,
                        customVerificationCallback: { certificates, promise in
                            if let leaf = certificates.first {
                                found.succeed(
                                    Validity(
                                        notBefore: Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore)),
                                        notAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))))
                            } else {
                                found.succeed(nil)
                            }
                            // Refuse it anyway: this connection is only for looking.
                            promise.succeed(.failed)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let deadline = loop.scheduleTask(in: .nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            found.succeed(nil)
        }
        do {
            let channel = try await bootstrap.connect(host: bare, port: port).get()
            let validity = try await found.futureResult.get()
            deadline.cancel()
            try? await channel.close()
            return validity
        } catch {
            deadline.cancel()
            found.succeed(nil)
            return nil
        }
    }
}
