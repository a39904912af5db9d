import DesiredState

/// One distinct mirror endpoint to probe: where its registry API answers and how to reach it.
public struct ProbeTarget: Sendable, Equatable {
    /// The URL probed: the mirror's API root plus `/`, e.g. `https://mirror:5000/v2/` or, with
    /// `override_path`, the override root itself.
    public var url: String
    public var tls: TLSSettings
    /// The sources this endpoint mirrors, for reporting.
    public var registries: [String]
    /// What the endpoint is known by in every report: the URL, plus its TLS settings when the
    /// same URL is also reached with other ones (each is probed and counted on its own).
    public var id: String

    public init(url: String, tls: TLSSettings, registries: [String], id: String? = nil) {
        self.url = url
        self.tls = tls
        self.registries = registries
        self.id = id ?? url
    }
}

public enum ProbeTargets {
    /// The URL a mirror is probed at: its registry API root plus `/`.
    public static func url(of mirror: MirrorEndpoint) -> String {
        let root = mirror.overridePath ? mirror.path : "/v2"
        return "\(mirror.scheme.rawValue)://\(mirror.host)\(root)/"
    }

    /// Every distinct endpoint of the model, in first-seen order. A mirror that keeps a source
    /// under a namespace (`/v2/ns`) is probed at its registry root (`/v2/`): the API answers
    /// there, not per namespace. An override path is probed as written.
    public static func from(_ model: MirrorModel) -> [ProbeTarget] {
        var targets: [ProbeTarget] = []
        var index: [ProbeKey: Int] = [:]
        for registry in model.registries {
            for mirror in registry.mirrors {
                let url = url(of: mirror)
                let key = ProbeKey(url: url, tls: mirror.tls)
                if let i = index[key] {
                    if !targets[i].registries.contains(registry.source.description) { targets[i].registries.append(registry.source.description) }
                } else {
                    index[key] = targets.count
                    targets.append(ProbeTarget(url: url, tls: mirror.tls, registries: [registry.source.description]))
                }
            }
        }
        // The same URL with different TLS settings: tell them apart in the reports.
        var perURL: [String: Int] = [:]
        for target in targets { perURL[target.url, default: 0] += 1 }
        for i in targets.indices where perURL[targets[i].url, default: 0] > 1 {
            targets[i].id = "\(targets[i].url) (\(describe(targets[i].tls)))"
        }
        return targets
    }

    /// The report id of each mirror of the model, as `from` assigns it.
    public static func ids(_ model: MirrorModel) -> [ProbeKey: String] {
        var ids: [ProbeKey: String] = [:]
        for target in from(model) { ids[ProbeKey(url: target.url, tls: target.tls)] = target.id }
        return ids
    }

    static func describe(_ tls: TLSSettings) -> String {
        var parts: [String] = []
        if tls.skipVerify { parts.append("skip verify") }
        if !tls.caFiles.isEmpty { parts.append("ca \(tls.caFiles.joined(separator: ","))") }
        if let cert = tls.clientCertificate { parts.append("client cert \(cert)") }
        return parts.isEmpty ? "system roots" : parts.joined(separator: ", ")
    }
}

public struct ProbeKey: Hashable, Sendable {
    public var url: String
    public var tls: TLSSettings

    public init(url: String, tls: TLSSettings) {
        self.url = url
        self.tls = tls
    }

    public init(_ mirror: MirrorEndpoint) {
        self.init(url: ProbeTargets.url(of: mirror), tls: mirror.tls)
    }
}
