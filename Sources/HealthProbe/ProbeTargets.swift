import DesiredState

/// One distinct mirror endpoint to probe: where its registry API answers and how to reach it.
public struct ProbeTarget: Sendable, Equatable {
    /// The URL probed: the mirror's API root plus `/`, e.g. `https://mirror:5000/v2/` or, with
    /// `override_path`, the override root itself.
    public var url: String
    public var tls: TLSSettings
    /// The sources this endpoint mirrors, for reporting.
    public var registries: [String]

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
        return targets
    }
}

private struct ProbeKey: Hashable {
    var url: String
    var tls: TLSSettings
}
