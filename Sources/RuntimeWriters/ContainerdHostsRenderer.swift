import DesiredState
import Diagnostics

/// What the installed containerd understands, where it matters for rendering.
public struct ContainerdFeatures: Sendable, Equatable {
    /// `dial_timeout` in hosts.toml: containerd 2.0.7+ and 2.1+ only.
    public var dialTimeout: Bool
    /// An IPv6 literal in a `[host."..."]` header: 1.x reads hosts.toml with go-toml v1, which
    /// takes a table header as raw text up to the first `]`, so `[::1]` breaks the whole file.
    public var bracketedHostHeaders: Bool

    public init(dialTimeout: Bool = false, bracketedHostHeaders: Bool = false) {
        self.dialTimeout = dialTimeout
        self.bracketedHostHeaders = bracketedHostHeaders
    }

    /// From a version string such as "1.6.20" or "v2.1.3".
    public init(version: String?) {
        guard let version else {
            self.init()
            return
        }
        let numbers = version.drop(while: { $0 == "v" }).split(separator: ".").prefix(3).map { Int($0.prefix(while: \.isNumber)) ?? 0 }
        let (major, minor, patch) = (numbers.first ?? 0, numbers.count > 1 ? numbers[1] : 0, numbers.count > 2 ? numbers[2] : 0)
        self.init(dialTimeout: major > 2 || (major == 2 && (minor >= 1 || (minor == 0 && patch >= 7))), bracketedHostHeaders: major >= 2)
    }
}

/// Renders containerd `hosts.toml` files (containerd `docs/hosts.md`): one per source host under
/// the hosts directory, mirrors as `[host."..."]` tables in order, the upstream as `server`.
public struct ContainerdHostsRenderer: Sendable {
    /// containerd's hosts directory (its `config_path`), a host path.
    public var hostsDirectory: String
    public var features: ContainerdFeatures
    /// `dial_timeout` for every mirror (e.g. "200ms"), written only where supported.
    public var dialTimeout: String?
    /// Sources reached over plain HTTP (`insecureRegistries`): their `server` is `http://`.
    public var plainHTTPHosts: Set<String>
    public var root: HostRoot

    public init(
        hostsDirectory: String, features: ContainerdFeatures = ContainerdFeatures(), dialTimeout: String? = nil,
        plainHTTPHosts: Set<String> = [], root: HostRoot = .system
    ) {
        self.hostsDirectory = hostsDirectory
        self.features = features
        self.dialTimeout = dialTimeout
        self.plainHTTPHosts = plainHTTPHosts
        self.root = root
    }

    /// The directory containerd looks up first for a host: `host_port_` for `host:port` (then
    /// `host:port`, then `_default`), the host itself otherwise.
    public static func directoryName(for host: String) -> String {
        guard let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") else { return host }
        return host[..<colon] + "_" + host[host.index(after: colon)...] + "_"
    }

    /// The host a directory name stands for (`host_port_` -> `host:port`, `_default` -> `*`).
    public static func host(forDirectory name: String) -> String {
        if name == "_default" { return "*" }
        guard name.hasSuffix("_"), let underscore = name.dropLast().lastIndex(of: "_") else { return name }
        let port = name[name.index(after: underscore)..<name.index(before: name.endIndex)]
        guard !port.isEmpty, port.allSatisfy(\.isNumber) else { return name }
        return name[..<underscore] + ":" + port
    }

    /// The directory names containerd tries for a host, in its order.
    public static func lookupOrder(for host: String) -> [String] {
        let first = directoryName(for: host)
        return (first == host ? [host] : [first, host]) + ["_default"]
    }

    public func render(_ model: MirrorModel) -> RenderResult {
        var result = RenderResult()
        if dialTimeout != nil && !features.dialTimeout {
            result.warnings.append(.warning("dial_timeout is not written: the installed containerd does not support it (2.0.7+ or 2.1+ needed)", at: nil))
        }
        for registry in model.registries {
            let directory: String
            switch registry.source {
            case .everyRegistry:
                // Nothing to say for every registry, unless k3s `configs."*"` TLS is for it.
                guard !registry.mirrors.isEmpty || !registry.sourceTLS.isEmpty else { continue }
                directory = "_default"
            case .host(let host):
                directory = Self.directoryName(for: host)
            case .repository(let host, _):
                var reason = "containerd's hosts.toml is per registry host and cannot key on \(registry.source.kindName); left to CRI-O only"
                if model.registries.contains(where: { $0.source == .host(host) }) {
                    reason += ". Images under it use \(host)'s hosts.toml instead: \(host)'s mirrors, then the source"
                    if registry.sourcePolicy == .neverContactSource { reason += ", even though it is NeverContactSource" }
                } else if registry.sourcePolicy == .neverContactSource {
                    reason += ". containerd pulls images under it from the source itself, even though it is NeverContactSource"
                }
                skip(registry, reason, into: &result)
                continue
            case .wildcardDomain:
                skip(registry, "containerd's hosts.toml is per registry host and cannot key on \(registry.source.kindName); left to CRI-O only", into: &result)
                continue
            }
            if !registry.rewrites.isEmpty {
                skip(registry, "containerd cannot rewrite repository paths (k3s rewrite); not widened to the whole registry", into: &result)
                continue
            }
            var registry = registry
            if !features.bracketedHostHeaders {
                for mirror in registry.mirrors where mirror.host.hasPrefix("[") {
                    result.warnings.append(
                        .warning(
                            "mirror \(mirror.displayURL) of \(registry.source) skipped for containerd: containerd 1.x (or an unknown version) cannot read an IPv6 address in a hosts.toml table header",
                            at: mirror.origins.first))
                }
                registry.mirrors.removeAll { $0.host.hasPrefix("[") }
                if registry.mirrors.isEmpty && registry.sourcePolicy == .neverContactSource {
                    skip(registry, "its only mirrors are IPv6 addresses, which containerd 1.x cannot read in hosts.toml", into: &result)
                    continue
                }
            }
            for mirror in registry.mirrors where mirror.pullFrom == .tagOnly {
                result.warnings.append(
                    .warning(
                        "containerd cannot keep mirror \(mirror.displayURL) of \(registry.source) to tag pulls only; it also serves digest pulls there",
                        at: mirror.origins.first))
            }
            result.files.append(
                RenderedFile(
                    baseDirectory: hostsDirectory, relativePath: directory + "/hosts.toml",
                    contents: hostsFile(registry), mode: Self.carriesCredentials(registry) ? 0o600 : 0o644, runtime: .containerd))
        }
        return result
    }

    /// A hosts.toml with an `Authorization` (or other credential) header is containerd's
    /// (root's) alone: 0600 instead of 0644. See SECURITY.md.
    static func carriesCredentials(_ registry: Registry) -> Bool {
        registry.mirrors.contains { $0.headers.contains { Quote.secretKeys.contains($0.name.lowercased()) } }
    }

    private func skip(_ registry: Registry, _ reason: String, into result: inout RenderResult) {
        result.skipped.append(SkippedSource(runtime: .containerd, source: registry.source.description, reason: reason, location: registry.origins.first))
        result.warnings.append(.warning("\(registry.source) skipped for containerd: \(reason)", at: registry.origins.first))
    }

    /// One hosts.toml. The upstream is `server` when the source may be contacted; for
    /// NeverContactSource the last mirror takes its place, so nothing falls back to the source.
    /// Every file keeps at least one `[host]` table (containerd 1.6 ignores a file without one).
    func hostsFile(_ registry: Registry) -> String {
        var text = ManagedHeader.lines(origins: registry.origins + registry.mirrors.flatMap(\.origins), root: root)
        var tables = registry.mirrors
        var serverLines: [String] = []
        switch (registry.sourcePolicy, registry.source) {
        case (.neverContactSource, _):
            // The last mirror is the server; with a single mirror it is also its own [host] table.
            let last = tables.count > 1 ? tables.removeLast() : tables[tables.count - 1]
            serverLines = ["server = \(TOML.string(url(last)))"] + settings(last, indent: "")
        case (.allowContactingSource, .everyRegistry):
            // No server: each image's own registry stays the fallback. TLS settings here (k3s
            // `configs."*"`) apply to that registry itself, as containerd reads a server-less
            // file, and to nothing else.
            serverLines = tlsLines(registry.sourceTLS, indent: "")
        case (.allowContactingSource, _):
            let upstream = upstreamURL(registry)
            serverLines = ["server = \(TOML.string(upstream))"]
            if !registry.sourceTLS.isEmpty {
                serverLines += tlsLines(registry.sourceTLS, indent: "")
            }
            if tables.isEmpty {
                // The upstream itself as the one [host] table, with every capability.
                let plain = upstream.hasPrefix("http://")
                tables = [
                    MirrorEndpoint(
                        scheme: plain ? .http : .https, host: String(upstream.dropFirst(plain ? 7 : 8)), capabilities: [.pull, .resolve, .push],
                        tls: registry.sourceTLS)
                ]
            }
        }
        if !serverLines.isEmpty { text += "\n" + ManagedHeader.origin(registry.origins, root: root) + serverLines.joined(separator: "\n") + "\n" }
        if tables.isEmpty {
            // Only root fields (`_default` with k3s `configs."*"` TLS): containerd 1.6 and 1.7
            // before 1.7.32 ignore such a file unless it has a `[host]` tree (containerd issue
            // 10027); an empty one is enough, as k3s writes it.
            text += "[host]\n"
        }
        for mirror in tables {
            let key = "host.\(TOML.string(url(mirror)))"
            text += "\n" + ManagedHeader.origin(mirror.origins, root: root) + "[\(key)]\n" + settings(mirror, indent: "  ").joined(separator: "\n") + "\n"
            if !mirror.headers.isEmpty {
                text += "  [\(key).header]\n"
                for header in mirror.headers {
                    text += "    \(TOML.string(header.name)) = \(TOML.array(header.values))\n"
                }
            }
        }
        return text
    }

    /// The table URL: the API root is `/v2` (added by containerd) unless the mirror keeps the
    /// source under a namespace or serves the API elsewhere; then the full root and
    /// `override_path`.
    func url(_ mirror: MirrorEndpoint) -> String {
        let base = "\(mirror.scheme.rawValue)://\(mirror.host)"
        return mirror.path.isEmpty ? base : base + mirror.apiRoot
    }

    func settings(_ mirror: MirrorEndpoint, indent: String) -> [String] {
        var lines = ["capabilities = \(TOML.array(mirror.capabilities.map(\.rawValue)))"]
        lines += tlsLines(mirror.tls, indent: "")
        if !mirror.path.isEmpty { lines.append("override_path = true") }
        if let dialTimeout, features.dialTimeout { lines.append("dial_timeout = \(TOML.string(dialTimeout))") }
        if indent.isEmpty, !mirror.headers.isEmpty {
            lines.append("[header]")
            lines += mirror.headers.map { "  \(TOML.string($0.name)) = \(TOML.array($0.values))" }
        }
        return lines.map { indent + $0 }
    }

    func tlsLines(_ tls: TLSSettings, indent: String) -> [String] {
        var lines: [String] = []
        if tls.caFiles.count == 1 { lines.append("ca = \(TOML.string(tls.caFiles[0]))") }
        if tls.caFiles.count > 1 { lines.append("ca = \(TOML.array(tls.caFiles))") }
        if let cert = tls.clientCertificate, let key = tls.clientKey {
            lines.append("client = [\(TOML.array([cert, key]))]")
        }
        if tls.skipVerify { lines.append("skip_verify = true") }
        return lines.map { indent + $0 }
    }

    /// The source's own registry endpoint. docker.io's is registry-1.docker.io; a host listed in
    /// `insecureRegistries`, and a loopback host on a port other than 443, is plain HTTP.
    func upstreamURL(_ registry: Registry) -> String {
        let host = registry.source.host ?? ""
        if plainHTTPHosts.contains(host) || registry.upstreamScheme == .http { return "http://" + host }
        return "https://" + (host == "docker.io" ? "registry-1.docker.io" : host)
    }
}

extension RegistrySource {
    var kindName: String {
        switch self {
        case .everyRegistry: return "every registry"
        case .host: return "a host"
        case .repository: return "a repository path"
        case .wildcardDomain: return "a wildcard domain"
        }
    }
}
