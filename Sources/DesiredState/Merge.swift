import Diagnostics

/// Merges the declarations of every document into one model.
///
/// Rules (README "Merge rules"):
/// - Declarations for the same source merge their mirror lists. Each declaration's own order is
///   kept; where declarations leave the order open, mirrors are ordered by a topological sort
///   with a lexical tie-break (as OpenShift's runtime-utils does), so the result does not depend on
///   which file or entry came first. The source itself is the implied last entry of every list.
///   Orders that contradict each other are resolved as runtime-utils does (lexically), with a
///   warning.
/// - The same mirror declared twice is one mirror: a digest-only and a tag-only declaration give
///   `all`, capabilities are joined, and TLS settings or headers that differ are an error.
/// - Different `mirrorSourcePolicy` values for one source are an error naming both places (an
///   omitted policy means AllowContactingSource).
/// - NeverContactSource for a source that is also one of its own mirrors is an error.
/// - An OpenShift set whose only mirror is its source, or that has no mirrors, is ignored (with
///   its policy).
enum Merger {
    static func merge(_ declarations: [RegistryDeclaration], insecure: Set<String> = [], into diagnostics: inout DiagnosticList) -> [Registry] {
        var groups: [RegistrySource: [RegistryDeclaration]] = [:]
        for declaration in declarations {
            let scheme = upstreamScheme(declaration.source, insecure: insecure)
            if declaration.isOpenShift, !declaration.mirrors.isEmpty, declaration.mirrors.allSatisfy({ isSource($0, of: declaration.source, scheme: scheme) }) {
                diagnostics.warning("ignored: the only mirror of \(declaration.source) is the source itself", at: declaration.location)
                continue
            }
            if declaration.isOpenShift, declaration.mirrors.isEmpty {
                diagnostics.warning("ignored: \(declaration.source) has no mirrors (its policy is ignored too, as OpenShift does)", at: declaration.location)
                continue
            }
            groups[declaration.source, default: []].append(declaration)
        }
        var registries: [Registry] = []
        for (source, group) in groups.sorted(by: { $0.key < $1.key }) {
            if let registry = mergeGroup(source, group, scheme: upstreamScheme(source, insecure: insecure), into: &diagnostics) {
                registries.append(registry)
            }
        }
        return registries
    }

    /// How a source is reached when nothing says otherwise (see ``References/upstreamScheme``).
    static func upstreamScheme(_ source: RegistrySource, insecure: Set<String>) -> URLScheme {
        source.host.map { References.upstreamScheme($0, insecure: insecure) } ?? .https
    }

    static func mergeGroup(
        _ source: RegistrySource, _ group: [RegistryDeclaration], scheme: URLScheme = .https, into diagnostics: inout DiagnosticList
    ) -> Registry? {
        // The policy: every declaration must agree, an omitted one meaning AllowContactingSource.
        var failed = false
        let stated = group.map { (policy: $0.policy ?? .allowContactingSource, place: $0.policyLocation ?? $0.location, omitted: $0.policy == nil) }
        let policy = stated[0].policy
        let policyPlace = stated.filter { $0.policy == policy }.map(\.place).min()!
        if let conflict = stated.filter({ $0.policy != policy }).min(by: { $0.place < $1.place }) {
            let allowOmitted = stated.contains { $0.policy == .allowContactingSource && $0.omitted }
            let (a, b) = policyPlace < conflict.place ? ((policy, policyPlace), (conflict.policy, conflict.place)) : ((conflict.policy, conflict.place), (policy, policyPlace))
            diagnostics.error(
                "conflicting mirrorSourcePolicy for source \(source): \(a.0.rawValue) at \(a.1) and \(b.0.rawValue) at \(b.1)\(allowOmitted ? " (an omitted policy means AllowContactingSource)" : "")",
                at: b.1)
            failed = true
        }

        // NeverContactSource with the source among its own mirrors, per declaration (as the
        // machine-config-operator checks it).
        for declaration in group where declaration.policy == .neverContactSource {
            if let own = declaration.mirrors.first(where: { isSource($0, of: source, scheme: scheme) }) {
                diagnostics.error(
                    "source \(source) is NeverContactSource but is also listed as its own mirror (at \(own.origins.map(\.description).joined(separator: ", ")))",
                    at: declaration.policyLocation ?? declaration.location)
                failed = true
            }
        }

        // The mirrors: one node per mirror, plus the source itself, which a declaration implies
        // after its last mirror unless it lists the source itself somewhere (as runtime-utils
        // does). Edges follow each declaration's order.
        let sourceKey = sourceNodeKey(source)
        var byKey: [String: MirrorEndpoint] = [:]
        var edges: [String: Set<String>] = [:]
        var indegree: [String: Int] = [:]
        func addEdge(_ from: String, _ to: String) {
            guard from != to, !(edges[from]?.contains(to) ?? false) else { return }
            edges[from, default: []].insert(to)
            indegree[to, default: 0] += 1
        }
        for declaration in group {
            var previous: String?
            var seenHere = Set<String>()
            for mirror in declaration.mirrors {
                let key = isSource(mirror, of: source, scheme: scheme) ? sourceKey! : sortKey(mirror)
                if seenHere.contains(key) {
                    diagnostics.warning("mirror \(mirror.displayURL) is listed twice for \(source); the later entry is ignored", at: mirror.origins.first)
                    continue
                }
                seenHere.insert(key)
                if let existing = byKey[key] {
                    guard let joined = join(existing, mirror, source: source, into: &diagnostics) else {
                        failed = true
                        continue
                    }
                    byKey[key] = joined
                } else {
                    byKey[key] = mirror
                    indegree[key, default: 0] += 0
                }
                if let previous { addEdge(previous, key) }
                previous = key
            }
            if let previous, let sourceKey, !seenHere.contains(sourceKey) {
                indegree[sourceKey, default: 0] += 0
                addEdge(previous, sourceKey)
            }
        }
        // Kahn's algorithm as OpenShift's runtime-utils runs it: a FIFO queue that starts with
        // the free nodes in lexical order; each batch a node frees joins the back, sorted; a cycle
        // is broken by taking the lexically smallest unused node.
        let allNodes = indegree.keys.sorted()
        var queue = allNodes.filter { indegree[$0] == 0 }
        var used = Set<String>()
        var order: [String] = []
        var cycleBreaks: [String] = []
        var nextUnused = 0
        while order.count < allNodes.count {
            if queue.isEmpty {
                while used.contains(allNodes[nextUnused]) { nextUnused += 1 }
                cycleBreaks.append(allNodes[nextUnused])
                queue.append(allNodes[nextUnused])
            }
            let node = queue.removeFirst()
            if used.contains(node) { continue }
            used.insert(node)
            order.append(node)
            var freed: [String] = []
            for target in edges[node, default: []] {
                indegree[target]! -= 1
                if indegree[target] == 0 && !used.contains(target) { freed.append(target) }
            }
            queue += freed.sorted()
        }
        if !cycleBreaks.isEmpty {
            let places = group.map(\.location.description).joined(separator: ", ")
            diagnostics.warning(
                "the mirror orders declared for \(source) contradict each other (at \(places)); resolved as OpenShift does, by lexical order where they conflict",
                at: group.last!.location)
        }
        // The source itself is the implicit last entry; listed anywhere else it stays a mirror.
        if let sourceKey, order.last == sourceKey { order.removeLast() }
        let mirrors = order.compactMap { key in byKey[key] ?? (key == sourceKey ? sourceEndpoint(source, scheme: scheme) : nil) }

        if policy == .neverContactSource, mirrors.isEmpty {
            diagnostics.error("source \(source) is NeverContactSource but has no mirror: nothing could be pulled from it", at: policyPlace)
            failed = true
        }

        var sourceTLS = TLSSettings()
        for declaration in group where !declaration.sourceTLS.isEmpty {
            if !sourceTLS.isEmpty && sourceTLS != declaration.sourceTLS {
                diagnostics.error("different TLS settings for source \(source) (also declared at \(group[0].location))", at: declaration.location)
                failed = true
            }
            sourceTLS = declaration.sourceTLS
        }
        if failed { return nil }
        return Registry(
            source: source, mirrors: mirrors, sourcePolicy: policy, sourceTLS: sourceTLS,
            rewrites: group.flatMap(\.rewrites), origins: group.map(\.location).sorted(), upstreamScheme: scheme)
    }

    /// Two declarations of one mirror become one, or nil (with an error) when they disagree.
    static func join(_ a: MirrorEndpoint, _ b: MirrorEndpoint, source: RegistrySource, into diagnostics: inout DiagnosticList) -> MirrorEndpoint? {
        var joined = a
        joined.pullFrom = a.pullFrom.merged(with: b.pullFrom)
        joined.capabilities = Array(Set(a.capabilities + b.capabilities)).sorted()
        if joined.pullFrom == .all && !joined.capabilities.contains(.resolve) { joined.capabilities = (joined.capabilities + [.resolve]).sorted() }
        joined.origins = (a.origins + b.origins).sorted()
        let where_ = "mirror \(a.displayURL) of \(source)"
        if a.tls != b.tls {
            if a.tls.isEmpty { joined.tls = b.tls } else if !b.tls.isEmpty {
                diagnostics.error("\(where_) has different TLS settings here and at \(a.origins.first?.description ?? "?")", at: b.origins.first)
                return nil
            }
        }
        if a.headers != b.headers {
            if a.headers.isEmpty { joined.headers = b.headers } else if !b.headers.isEmpty {
                diagnostics.error("\(where_) has different headers here and at \(a.origins.first?.description ?? "?")", at: b.origins.first)
                return nil
            }
        }
        return joined
    }

    /// How mirrors sort where declarations leave the order open: by location, as OpenShift
    /// sorts its (scheme-less) mirror strings, then scheme.
    static func sortKey(_ mirror: MirrorEndpoint) -> String {
        mirror.host + mirror.path + (mirror.overridePath ? " override" : "") + " " + mirror.scheme.rawValue
    }

    /// The node that stands for the source itself in the ordering graph.
    static func sourceNodeKey(_ source: RegistrySource) -> String? {
        switch source {
        case .host(let host): return host + " source"
        case .repository(let host, let path): return host + "/" + path + " source"
        case .everyRegistry, .wildcardDomain: return nil
        }
    }

    /// The source as a mirror entry, for when declarations put it before other mirrors.
    static func sourceEndpoint(_ source: RegistrySource, scheme: URLScheme) -> MirrorEndpoint? {
        switch source {
        case .host(let host): return MirrorEndpoint(scheme: scheme, host: host)
        case .repository(let host, let path): return MirrorEndpoint(scheme: scheme, host: host, path: "/" + path)
        case .everyRegistry, .wildcardDomain: return nil
        }
    }

    /// Whether a mirror is the source itself: same scheme as the source is reached with, same
    /// host, same repository namespace. `http://reg:5000` is another endpoint than the source
    /// `reg:5000` (reached over HTTPS), as k3s compares whole URLs.
    static func isSource(_ mirror: MirrorEndpoint, of source: RegistrySource, scheme: URLScheme) -> Bool {
        guard !mirror.overridePath, mirror.scheme == scheme else { return false }
        switch source {
        case .host(let host): return mirror.host == host && mirror.path.isEmpty
        case .repository(let host, let path): return mirror.host == host && mirror.path == "/" + path
        case .everyRegistry, .wildcardDomain: return false
        }
    }
}
