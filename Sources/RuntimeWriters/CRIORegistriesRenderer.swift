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
    /// `[[registry]]` tables already on the host (the main registries.conf and drop-ins that
    /// sort before ours), to find scopes nested inside ours that would shadow our mirrors.
    public var existingTables: [RegistriesConfTable]

    public init(dropInPath: String, plainHTTPHosts: Set<String> = [], root: HostRoot = .system, existingTables: [RegistriesConfTable] = []) {
        self.dropInPath = dropInPath
        self.plainHTTPHosts = plainHTTPHosts
        self.root = root
        self.existingTables = existingTables
    }

    public func render(_ model: MirrorModel) -> RenderResult {
        var result = RenderResult()
        var body = ""
        var origins: [SourceLocation] = []
        let ownPrefixes = Set(model.registries.map(\.source.description))
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
                // CA and client certificate: /etc/containers/certs.d/<host>/ (CRIOCertsRenderer).
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
            let inherited = enclosingFlags(of: registry, prefix: prefix, into: &result)
            if registry.sourceTLS.skipVerify || registry.source.host.map(plainHTTPHosts.contains) == true || inherited.insecure {
                body += "insecure = true\n"
            }
            if registry.sourcePolicy == .neverContactSource || inherited.blocked { body += "blocked = true\n" }
            body += mirrors.joined()
            body += nestedScopes(of: registry, prefix: prefix, ownPrefixes: ownPrefixes, into: &result)
        }
        guard !body.isEmpty else { return result }
        let (directory, name) = AtomicWriter.split(hostPath: dropInPath)
        result.files.append(
            RenderedFile(
                baseDirectory: directory, relativePath: name,
                contents: ManagedHeader.lines(origins: origins, root: root) + body, runtime: .crio))
        return result
    }

    /// A table already on the host for our own prefix, or for a scope that contains ours
    /// (`reg.example` around `reg.example/org`, or `*.example` around `reg.example`), stops
    /// applying to the images under ours: a drop-in's table replaces one of the same prefix, and
    /// containers/image uses only the longest matching prefix. Its `blocked` and `insecure` are
    /// kept on our table (and reported), as OpenShift's runtime-utils keeps them on the entry it
    /// edits and propagates them to nested entries. A table that points elsewhere (a location of
    /// its own) is left to the inspector's report.
    func enclosingFlags(of registry: Registry, prefix: String, into result: inout RenderResult) -> (blocked: Bool, insecure: Bool) {
        var blocked = false
        var insecure = false
        for table in existingTables where (table.blocked || table.insecure) && (table.location == nil || table.location == table.prefix) {
            let same = table.prefix == prefix
            guard same || Self.scope(prefix, isInside: table.prefix) else { continue }
            let flags = [table.blocked ? "blocked" : nil, table.insecure ? "insecure" : nil].compactMap { $0 }.joined(separator: " and ")
            result.warnings.append(
                .warning(
                    same
                        ? "[[registry]] prefix \"\(prefix)\" in \(table.file) is replaced by the drop-in's table; its \(flags) = true is kept there"
                        : "\(prefix) is inside [[registry]] prefix \"\(table.prefix)\" in \(table.file), which the drop-in's table replaces for images under \(prefix); its \(flags) = true is kept there",
                    at: registry.origins.first))
            blocked = blocked || table.blocked
            insecure = insecure || table.insecure
        }
        return (blocked, insecure)
    }

    /// runtime-utils' ScopeIsNestedInsideScope, strictly inside: `a/b` in `a`, `x.a.com[/...]` in
    /// `*.a.com`.
    static func scope(_ sub: String, isInside outer: String) -> Bool {
        if sub == outer { return false }
        if outer.hasPrefix("*.") {
            let host = sub.split(separator: "/", maxSplits: 1).first.map(String.init) ?? sub
            let name = host.split(separator: ":", maxSplits: 1).first.map(String.init) ?? host
            return name.hasSuffix(outer.dropFirst()) && !sub.hasPrefix("*.")
        }
        return sub.hasPrefix(outer + "/")
    }

    /// containers/image uses only the longest matching prefix, so a table already on the host
    /// for a scope inside ours (`reg/org` inside `reg`) keeps our mirrors from images under it.
    /// Where that table has no mirrors of its own, only keys we can reproduce and no location of
    /// its own, its settings and our mirrors (their locations extended by the same path, as
    /// OpenShift's runtime-utils does) are written to a table of that prefix here, which replaces
    /// it. Anything else is reported.
    func nestedScopes(of registry: Registry, prefix: String, ownPrefixes: Set<String>, into result: inout RenderResult) -> String {
        switch registry.source {
        case .host, .repository: break
        case .everyRegistry, .wildcardDomain: return ""
        }
        let usable = registry.mirrors.filter { !$0.overridePath }
        guard !usable.isEmpty else { return "" }
        var text = ""
        var done = Set<String>()
        for table in existingTables where table.prefix.hasPrefix(prefix + "/") && !ownPrefixes.contains(table.prefix) {
            guard !done.contains(table.prefix) else { continue }
            done.insert(table.prefix)
            let place = "[[registry]] prefix \"\(table.prefix)\" in \(table.file)"
            let carry = table.mirrors.isEmpty && table.onlyKnownKeys && (table.location == nil || table.location == table.prefix)
            guard carry else {
                result.warnings.append(
                    .warning(
                        "\(place) is nested inside \(prefix) and shadows its mirrors for images under \(table.prefix) (containers/image uses only the longest matching prefix)\(table.mirrors.isEmpty ? "" : "; it has mirrors of its own, so ours are not added")",
                        at: registry.origins.first))
                continue
            }
            let adjustment = String(table.prefix.dropFirst(prefix.count))
            result.warnings.append(
                .warning(
                    "\(place) is nested inside \(prefix) and would shadow its mirrors; the drop-in carries it, with its settings and \(prefix)'s mirrors (locations extended by \(adjustment))",
                    at: registry.origins.first))
            text += "\n# carried from \(TOML.commentSafe(table.file)): nested inside \(TOML.commentSafe(prefix)), it would shadow its mirrors\n"
            text += "[[registry]]\nprefix = \(TOML.string(table.prefix))\nlocation = \(TOML.string(table.prefix))\n"
            if table.insecure { text += "insecure = true\n" }
            if table.blocked || registry.sourcePolicy == .neverContactSource { text += "blocked = true\n" }
            for mirror in usable {
                text += "\n[[registry.mirror]]\nlocation = \(TOML.string(mirror.host + mirror.path + adjustment))\n"
                text += "insecure = \(mirror.scheme == .http || mirror.tls.skipVerify)\n"
                if mirror.pullFrom != .all { text += "pull-from-mirror = \(TOML.string(mirror.pullFrom.rawValue))\n" }
            }
        }
        return text
    }

    private func skip(_ registry: Registry, _ reason: String, into result: inout RenderResult) {
        result.skipped.append(SkippedSource(runtime: .crio, source: registry.source.description, reason: reason, location: registry.origins.first))
        result.warnings.append(.warning("\(registry.source) skipped for CRI-O: \(reason)", at: registry.origins.first))
    }
}
