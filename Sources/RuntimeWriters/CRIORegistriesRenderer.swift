import DesiredState
import Diagnostics

/// Renders one containers-registries.conf v2 drop-in for CRI-O (and everything else that uses
/// containers/image): a `[[registry]]` table per source with its `[[registry.mirror]]` tables.
///
/// Facts that shape it (containers-registries.conf(5)): a drop-in's table replaces an earlier
/// table of the same prefix whole, so the file must sort last; within a file a duplicate prefix
/// is silently dropped, so each prefix appears once; a mirror never inherits `insecure`;
/// `pull-from-mirror` and `mirror-by-digest-only` must not meet (only the former is written);
/// NeverContactSource is `blocked = true` on the source, its mirrors still used.
public struct CRIORegistriesRenderer: Sendable {
    /// The drop-in's host path, e.g. `/etc/containers/registries.conf.d/99-mirror-agent.conf`.
    public var dropInPath: String
    /// Sources reached over plain HTTP (`insecureRegistries`): `insecure = true` on their table.
    public var plainHTTPHosts: Set<String>
    public var root: HostRoot

    public init(dropInPath: String, plainHTTPHosts: Set<String> = [], root: HostRoot = .system) {
        self.dropInPath = dropInPath
        self.plainHTTPHosts = plainHTTPHosts
        self.root = root
    }

    public func render(_ model: MirrorModel) -> RenderResult {
        var result = RenderResult()
        var body = ""
        var origins: [SourceLocation] = []
        for registry in model.registries {
            let prefix: String
            var location: String?
            switch registry.source {
            case .everyRegistry:
                skip(registry, "containers-registries.conf has no prefix for every registry", into: &result)
                continue
            case .wildcardDomain(let domain):
                // A wildcard prefix takes no location: each match keeps its own host.
                prefix = "*.\(domain)"
            case .host, .repository:
                prefix = registry.source.description
                location = prefix
            }
            if !registry.rewrites.isEmpty {
                skip(registry, "containers-registries.conf cannot rewrite repository paths (k3s rewrite); not widened to the whole registry", into: &result)
                continue
            }
            var mirrors: [String] = []
            for mirror in registry.mirrors {
                if mirror.overridePath {
                    result.warnings.append(
                        .warning(
                            "mirror \(mirror.displayURL) of \(registry.source) skipped for CRI-O: its API root \(mirror.path) is not /v2, which containers-registries.conf cannot express",
                            at: mirror.origins.first))
                    continue
                }
                if !mirror.tls.caFiles.isEmpty || mirror.tls.clientCertificate != nil {
                    result.warnings.append(
                        .warning(
                            "TLS files for mirror \(mirror.displayURL) are not in the CRI-O drop-in: containers/image reads them from /etc/containers/certs.d/\(mirror.host)/",
                            at: mirror.origins.first))
                }
                if !mirror.headers.isEmpty {
                    result.warnings.append(
                        .warning("headers for mirror \(mirror.displayURL) are not in the CRI-O drop-in: containers-registries.conf has no headers", at: mirror.origins.first))
                }
                if mirror.tls.skipVerify && mirror.scheme != .http {
                    result.warnings.append(
                        .warning(
                            "insecureSkipVerify for mirror \(mirror.displayURL) becomes CRI-O's insecure = true, which also lets CRI-O fall back to plain HTTP for it (containers-registries.conf has no verify-only switch)",
                            at: mirror.origins.first))
                }
                var table = "\n" + ManagedHeader.origin(mirror.origins, root: root) + "[[registry.mirror]]\nlocation = \(TOML.string(mirror.host + mirror.path))\n"
                // Each mirror states its own: a mirror never inherits insecure from anything.
                table += "insecure = \(mirror.scheme == .http || mirror.tls.skipVerify)\n"
                if mirror.pullFrom != .all { table += "pull-from-mirror = \(TOML.string(mirror.pullFrom.rawValue))\n" }
                mirrors.append(table)
                origins += mirror.origins
            }
            if registry.mirrors.count > 0 && mirrors.isEmpty && registry.sourcePolicy == .neverContactSource {
                skip(registry, "none of its mirrors can be expressed for CRI-O, and blocking the source alone would break every pull", into: &result)
                continue
            }
            origins += registry.origins
            body += "\n" + ManagedHeader.origin(registry.origins, root: root) + "[[registry]]\nprefix = \(TOML.string(prefix))\n"
            if let location { body += "location = \(TOML.string(location))\n" }
            if registry.sourceTLS.skipVerify && registry.source.host.map(plainHTTPHosts.contains) != true {
                result.warnings.append(
                    .warning(
                        "sourceTLS.insecureSkipVerify for \(registry.source) becomes CRI-O's insecure = true, which also lets CRI-O fall back to plain HTTP for it (containers-registries.conf has no verify-only switch)",
                        at: registry.origins.first))
            }
            if registry.sourceTLS.skipVerify || registry.source.host.map(plainHTTPHosts.contains) == true { body += "insecure = true\n" }
            if registry.sourcePolicy == .neverContactSource { body += "blocked = true\n" }
            body += mirrors.joined()
        }
        guard !body.isEmpty else { return result }
        let (directory, name) = AtomicWriter.split(hostPath: dropInPath)
        result.files.append(
            RenderedFile(
                baseDirectory: directory, relativePath: name,
                contents: ManagedHeader.lines(origins: origins, root: root) + body, runtime: .crio))
        return result
    }

    private func skip(_ registry: Registry, _ reason: String, into result: inout RenderResult) {
        result.skipped.append(SkippedSource(runtime: .crio, source: registry.source.description, reason: reason, location: registry.origins.first))
        result.warnings.append(.warning("\(registry.source) skipped for CRI-O: \(reason)", at: registry.origins.first))
    }
}
