import Diagnostics

/// A registry from containerd's deprecated `registry.mirrors` / `registry.configs` tables in
/// config.toml. They cannot stay there once `config_path` is set (the CRI plugin then refuses to
/// load), so they are migrated into the model, rendered as hosts.toml, and removed from
/// config.toml: never dropped silently.
public struct LegacyContainerdMirror: Sendable, Equatable {
    public var host: String
    /// `registry.mirrors."<host>".endpoint`, in order.
    public var endpoints: [String]
    /// `registry.configs."<host>".tls`.
    public var tls: TLSSettings
    public var location: SourceLocation

    public init(host: String, endpoints: [String], tls: TLSSettings, location: SourceLocation) {
        self.host = host
        self.endpoints = endpoints
        self.tls = tls
        self.location = location
    }
}

extension DesiredStateLoader {
    /// Turns legacy entries into declarations, normalized like k3s endpoints (the same shape and
    /// meaning: the registry's own endpoint is tried last).
    static func declarations(from legacy: [LegacyContainerdMirror], into diagnostics: inout DiagnosticList) -> [RegistryDeclaration] {
        let tlsByHost = Dictionary(legacy.map { ($0.host, $0.tls) }, uniquingKeysWith: { a, _ in a })
        var result: [RegistryDeclaration] = []
        for entry in legacy {
            do {
                let source = try References.source(entry.host, forms: [.everyRegistry], at: entry.location)
                var mirrors: [MirrorEndpoint] = []
                for endpoint in entry.endpoints {
                    let parsed = try References.mirror(endpoint, defaultScheme: .k3s, pathMeaning: .k3sEndpoint, allowScheme: true, at: entry.location)
                    mirrors.append(
                        MirrorEndpoint(
                            scheme: parsed.scheme, host: parsed.host, path: parsed.path, overridePath: parsed.overridePath,
                            tls: tlsByHost[parsed.host] ?? TLSSettings(), origins: [entry.location]))
                }
                if let last = mirrors.last, let host = source.host, K3sRegistriesDialect.isDefaultEndpoint(last, of: host) {
                    mirrors.removeLast()
                }
                if mirrors.isEmpty && entry.tls.isEmpty { continue }
                result.append(
                    RegistryDeclaration(
                        source: source, location: entry.location, policy: nil, policyLocation: nil, mirrors: mirrors,
                        sourceTLS: source.host.flatMap { tlsByHost[$0] } ?? TLSSettings()))
            } catch {
                diagnostics.append(error)
            }
        }
        return result
    }
}
