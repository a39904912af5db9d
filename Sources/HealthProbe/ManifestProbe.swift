import AsyncHTTPClient
import DesiredState
import Diagnostics
import NIOCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOHTTP1

/// One manifest request, as a runtime makes it (for `explain --probe`): the answer's status, or
/// why there was none, how long it took (token exchange included), and how it authenticated.
public struct ManifestAnswer: Sendable, Equatable {
    public var status: Int?
    public var error: String?
    public var seconds: Double
    /// How the request was authorized, in words that never hold a secret: "basic", "bearer token
    /// from <realm host>", "anonymous bearer token from <realm host>", or why it could not be.
    public var auth: String?
}

/// Credentials for one registry host, as a runtime would send them. Never printed.
public struct ProbeCredentials: Sendable, Equatable, CustomStringConvertible {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
    public var description: String { "<credentials>" }

    /// From k3s `configs.<host>.auth`: username and password, or `auth` (base64 "user:password").
    /// An identity token alone is not used (it needs an OAuth2 refresh exchange).
    public init?(_ credentials: HostCredentials) {
        if let username = credentials.username, let password = credentials.password?.value {
            self.init(username: username, password: password)
        } else if let auth = credentials.auth?.value, let data = Data(base64Encoded: auth),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        {
            self.init(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        } else {
            return nil
        }
    }

    var basic: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}

/// A `WWW-Authenticate` challenge: its scheme and parameters (quoted values unquoted).
struct AuthChallenge: Equatable {
    var scheme: String
    var parameters: [String: String]

    /// The first challenge of a header value (`Bearer realm="...",service="...",scope="..."`).
    static func parse(_ header: String) -> AuthChallenge? {
        let text = header.trimmingWhitespace()
        guard let space = text.firstIndex(of: " ") else { return text.isEmpty ? nil : AuthChallenge(scheme: text.lowercased(), parameters: [:]) }
        var parameters: [String: String] = [:]
        var rest = text[text.index(after: space)...]
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingWhitespace().lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                var end = rest.endIndex
                for i in rest.indices {
                    let c = rest[i]
                    if escaped { value.append(c); escaped = false; continue }
                    if c == "\\" { escaped = true; continue }
                    if c == "\"" { end = i; break }
                    value.append(c)
                }
                rest = end < rest.endIndex ? rest[rest.index(after: end)...] : rest[rest.endIndex...]
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmingWhitespace()
                rest = rest[end...]
            }
            parameters[key] = value
        }
        return AuthChallenge(scheme: text[..<space].lowercased(), parameters: parameters)
    }
}

extension MirrorProber {
    /// Asks for a manifest as the runtimes' resolvers do: anonymously first; on `401` with a
    /// `Basic` challenge again with the credentials, on a `Bearer` challenge a token from the
    /// realm (`GET realm?service=...&scope=...`, with the credentials as Basic when there are
    /// any, anonymous otherwise) and the request again with it.
    public func manifest(url: String, method: String, accept: [String], tls: TLSSettings, credentials: ProbeCredentials? = nil) async -> ManifestAnswer {
        let start = ContinuousClock.now
        var answer = ManifestAnswer(status: nil, error: nil, seconds: 0)
        do {
            var response = try await send(url: url, method: method, accept: accept, tls: tls, authorization: nil)
            answer.status = response.status
            if response.status == 401 {
                let challenge = response.challenge.flatMap(AuthChallenge.parse)
                switch challenge?.scheme {
                case "basic":
                    if let credentials {
                        response = try await send(url: url, method: method, accept: accept, tls: tls, authorization: credentials.basic)
                        answer.status = response.status
                        answer.auth = "basic"
                    } else {
                        answer.auth = "Basic challenge, no credentials for this host"
                    }
                case "bearer":
                    guard let realm = challenge?.parameters["realm"], var components = URLComponents(string: realm), let realmHost = components.host,
                        components.scheme == "https" || components.scheme == "http"
                    else {
                        answer.auth = "Bearer challenge without a usable realm"
                        break
                    }
                    var items = components.queryItems ?? []
                    if let service = challenge?.parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
                    if let scope = challenge?.parameters["scope"] { items.append(URLQueryItem(name: "scope", value: scope)) }
                    components.queryItems = items.isEmpty ? nil : items
                    guard let tokenURL = components.url?.absoluteString else { break }
                    let tokenAnswer = try await send(url: tokenURL, method: "GET", accept: ["application/json"], tls: tls, authorization: credentials?.basic, collectBody: true)
                    let who = credentials == nil ? "anonymous bearer token" : "bearer token"
                    guard tokenAnswer.status == 200, let body = tokenAnswer.body,
                        let json = try? JSONDecoder().decode(TokenAnswer.self, from: body),
                        let token = json.token ?? json.accessToken, !token.isEmpty
                    else {
                        answer.auth = "\(who) from \(realmHost) refused (HTTP \(tokenAnswer.status))"
                        break
                    }
                    response = try await send(url: url, method: method, accept: accept, tls: tls, authorization: "Bearer " + token)
                    answer.status = response.status
                    answer.auth = "\(who) from \(realmHost)"
                default:
                    break
                }
            }
        } catch {
            let context = ProbeFailureMapping.Context(connectTimeout: settings.connectTimeout, timeout: settings.timeout, sentClientCertificate: tls.clientCertificate != nil)
            answer.error = ProbeFailureMapping.failure(for: error, context).text
        }
        let elapsed = ContinuousClock.now - start
        answer.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return answer
    }

    private func send(
        url: String, method: String, accept: [String], tls: TLSSettings, authorization: String?, collectBody: Bool = false
    ) async throws -> (status: Int, challenge: String?, body: Data?) {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "User-Agent", value: "mirror-agent-explain")
        request.headers.add(name: "Accept", value: accept.joined(separator: ", "))
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        if url.hasPrefix("https://") { request.tlsConfiguration = try TrustMaterial(root: root).configuration(tls) }
        let response = try await client.execute(request, timeout: .nanoseconds(Self.nanoseconds(settings.timeout)))
        let body = try? await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), response.headers.first(name: "WWW-Authenticate"), collectBody ? body.map { Data($0.readableBytesView) } : nil)
    }
}

/// A token endpoint's answer: `token` or `access_token` (the distribution spec allows both); a
/// field of another type counts as absent, as it did when the answer was read as a dictionary.
struct TokenAnswer: Decodable {
    var token: String?
    var accessToken: String?

    enum CodingKeys: String, CodingKey {
        case token
        case accessToken = "access_token"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        token = try? container.decodeIfPresent(String.self, forKey: .token)
        accessToken = try? container.decodeIfPresent(String.self, forKey: .accessToken)
    }
}
