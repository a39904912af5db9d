import Diagnostics

/// The one normalized model every input dialect is turned into: the registries to mirror, each
/// with its mirrors in the order they are tried.
public struct MirrorModel: Sendable, Equatable {
    /// Sorted by source, so rendering is deterministic whatever the file order.
    public var registries: [Registry]
    /// Credentials found in the input (k3s `configs.<host>.auth`), keyed by host. Kept so that
    /// nothing is silently lost, never logged or rendered.
    public var credentials: [HostCredentials]

    public init(registries: [Registry] = [], credentials: [HostCredentials] = []) {
        self.registries = registries
        self.credentials = credentials
    }

    public var mirrorCount: Int { registries.reduce(0) { $0 + $1.mirrors.count } }
}

/// One upstream registry (or repository namespace) and how to reach it through mirrors.
public struct Registry: Sendable, Equatable {
    public var source: RegistrySource
    /// Tried in this order, before the source itself (unless ``sourcePolicy`` forbids it).
    public var mirrors: [MirrorEndpoint]
    public var sourcePolicy: SourcePolicy
    /// TLS settings for talking to the source itself (k3s `configs.<source host>.tls`).
    public var sourceTLS: TLSSettings
    /// k3s `rewrite` rules (regex -> replacement on the repository path for mirrors). Neither
    /// containerd nor CRI-O can express them.
    public var rewrites: [RewriteRule]
    /// Every place this registry was declared.
    public var origins: [SourceLocation]
    /// How the source itself is reached: plain HTTP for a host in `insecureRegistries` and for a
    /// loopback host on a port other than 443 (containerd's and k3s's default), HTTPS otherwise.
    public var upstreamScheme: URLScheme

    public init(
        source: RegistrySource, mirrors: [MirrorEndpoint] = [],
        sourcePolicy: SourcePolicy = .allowContactingSource, sourceTLS: TLSSettings = TLSSettings(),
        rewrites: [RewriteRule] = [], origins: [SourceLocation] = [], upstreamScheme: URLScheme = .https
    ) {
        self.upstreamScheme = upstreamScheme
        self.source = source
        self.mirrors = mirrors
        self.sourcePolicy = sourcePolicy
        self.sourceTLS = sourceTLS
        self.rewrites = rewrites
        self.origins = origins
    }
}

/// What a registry entry applies to.
public enum RegistrySource: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `*`: every registry (containerd's `_default`).
    case everyRegistry
    /// `host[:port]`.
    case host(String)
    /// `host[:port]/repo/path`: only images under this repository namespace.
    case repository(host: String, path: String)
    /// `*.example.com`: every registry host under a domain.
    case wildcardDomain(String)

    public var description: String {
        switch self {
        case .everyRegistry: return "*"
        case .host(let host): return host
        case .repository(let host, let path): return "\(host)/\(path)"
        case .wildcardDomain(let domain): return "*.\(domain)"
        }
    }

    /// The registry host, for the forms that have exactly one.
    public var host: String? {
        switch self {
        case .host(let host), .repository(let host, _): return host
        case .everyRegistry, .wildcardDomain: return nil
        }
    }

    public static func < (a: RegistrySource, b: RegistrySource) -> Bool { a.description < b.description }
}

/// Whether images may still come from the source when no mirror has them.
public enum SourcePolicy: String, Sendable, Hashable, Codable {
    case allowContactingSource = "AllowContactingSource"
    case neverContactSource = "NeverContactSource"
}

/// Which pulls a mirror serves (containers/image `pull-from-mirror`).
public enum PullFrom: String, Sendable, Hashable, Codable, CaseIterable {
    case all
    case digestOnly = "digest-only"
    case tagOnly = "tag-only"

    /// The same mirror declared by a digest set and by a tag set serves both.
    public func merged(with other: PullFrom) -> PullFrom { self == other ? self : .all }
}

/// What a mirror may be used for (containerd `capabilities`).
public enum Capability: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case pull, resolve, push

    public static func < (a: Capability, b: Capability) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

public enum URLScheme: String, Sendable, Hashable, Codable {
    case http, https
}

/// One mirror: where it is, what it serves, and how to talk to it.
public struct MirrorEndpoint: Sendable, Equatable {
    public var scheme: URLScheme
    /// `host[:port]`, lowercased; IPv6 literals in brackets.
    public var host: String
    /// `""` or `/seg/seg`. When ``overridePath`` is false this is the repository namespace the
    /// mirror keeps the source's images under (`mirror.corp.example/quay` for `quay.io`); when true
    /// it is the literal registry API root (containerd's `override_path`), for registries that do
    /// not serve the API at `/v2`.
    public var path: String
    public var overridePath: Bool
    public var capabilities: [Capability]
    public var pullFrom: PullFrom
    public var tls: TLSSettings
    /// Extra HTTP headers, in the order written.
    public var headers: [HTTPHeader]
    /// Where this mirror was declared (each declaration, when merged).
    public var origins: [SourceLocation]

    public init(
        scheme: URLScheme, host: String, path: String = "", overridePath: Bool = false,
        capabilities: [Capability] = [.pull, .resolve], pullFrom: PullFrom = .all,
        tls: TLSSettings = TLSSettings(), headers: [HTTPHeader] = [], origins: [SourceLocation] = []
    ) {
        self.scheme = scheme
        self.host = host
        self.path = path
        self.overridePath = overridePath
        self.capabilities = capabilities
        self.pullFrom = pullFrom
        self.tls = tls
        self.headers = headers
        self.origins = origins
    }

    /// What makes two declarations the same mirror.
    public var identity: String {
        "\(scheme.rawValue)://\(host)\(path)\(overridePath ? " (override_path)" : "")"
    }

    /// The URL as a person would write it: `https://mirror.corp.example/quay`.
    public var displayURL: String { "\(scheme.rawValue)://\(host)\(path)" }

    /// The registry API root for this mirror: `/v2` plus the repository namespace, or the
    /// override path as given.
    public var apiRoot: String { overridePath ? path : "/v2" + path }
}

/// TLS settings for one endpoint. Paths are as the runtime will see them (absolute, on the host).
public struct TLSSettings: Sendable, Hashable {
    public var caFiles: [String]
    public var clientCertificate: String?
    public var clientKey: String?
    public var skipVerify: Bool

    public init(caFiles: [String] = [], clientCertificate: String? = nil, clientKey: String? = nil, skipVerify: Bool = false) {
        self.caFiles = caFiles
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.skipVerify = skipVerify
    }

    public var isEmpty: Bool { self == TLSSettings() }
}

public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var values: [String]

    public init(name: String, values: [String]) {
        self.name = name
        self.values = values
    }
}

/// A k3s `rewrite` rule: a regular expression on the repository path and its replacement.
public struct RewriteRule: Sendable, Equatable {
    public var pattern: String
    public var replacement: String
    public var location: SourceLocation

    public init(pattern: String, replacement: String, location: SourceLocation) {
        self.pattern = pattern
        self.replacement = replacement
        self.location = location
    }
}

/// A value that must never be printed, logged or rendered.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Registry credentials for one host: the `host[:port]` a runtime contacts (a mirror's host, or
/// a source's own), as written in the input (k3s `configs.<host>.auth` keys, or a MirrorSet
/// mirror's or source's host). Secret values are resolved (files read) when the desired state is
/// loaded, so a rotated file gives new values on the next pass.
///
/// Forms, as containerd's CRI plugin reads them (`ParseAuth`): `username` with `password`, or
/// `auth` (base64 of `user:password`), or `identityToken` (with or without `username`).
public struct HostCredentials: Sendable, Equatable {
    public var host: String
    public var username: String?
    public var password: Secret?
    public var auth: Secret?
    public var identityToken: Secret?
    /// Where they were declared.
    public var location: SourceLocation
    /// The files the values were read from (host paths), for watching; empty for inline values.
    public var files: [String]

    public init(
        host: String, username: String? = nil, password: Secret? = nil, auth: Secret? = nil, identityToken: Secret? = nil,
        location: SourceLocation, files: [String] = []
    ) {
        self.host = host
        self.username = username
        self.password = password
        self.auth = auth
        self.identityToken = identityToken
        self.location = location
        self.files = files
    }

    /// Whether two declarations give the same values (places and files aside).
    public func sameValues(as other: HostCredentials) -> Bool {
        username == other.username && password == other.password && auth == other.auth && identityToken == other.identityToken
    }
}
