import Diagnostics

/// Merges the declarations of every document into one model.
///
/// Rules (README "Merge rules"):
/// - Declarations for the same source merge their mirror lists. Each declaration's own order is
///   kept; where declarations leave the order open, mirrors are ordered by a topological sort
///   with a lexical tie-break (as OpenShift's runtime-utils does), so the result does not depend on
///   which file or entry came first. Orders that contradict each other are an error.
/// - The same mirror declared twice is one mirror: a digest-only and a tag-only declaration give
///   `all`, capabilities are joined, and TLS settings or headers that differ are an error.
/// - Different `mirrorSourcePolicy` values for one source are an error naming both places (an
///   omitted policy means AllowContactingSource).
/// - NeverContactSource for a source that is also one of its own mirrors is an error.
/// - An OpenShift set whose only mirror is its source is ignored.
enum Merger {
    static func merge(_ declarations: [RegistryDeclaration], into diagnostics: inout DiagnosticList) -> [Registry] {
        var groups: [RegistrySource: [RegistryDeclaration]] = [:]
        for declaration in declarations {
            if declaration.isOpenShift, declaration.mirrors.count == 1, isSource(declaration.mirrors[0], of: declaration.source) {
                diagnostics.warning("ignored: the only mirror of \(declaration.source) is the source itself", at: declaration.location)
                continue
            }
            groups[declaration.source, default: []].append(declaration)
        }
        var registries: [Registry] = []
        for (source, group) in groups.sorted(by: { $0.key < $1.key }) {
            if let registry = mergeGroup(source, group, into: &diagnostics) { registries.append(registry) }
        }
        return registries
    }

    static func mergeGroup(_ source: RegistrySource, _ group: [RegistryDeclaration], into diagnostics: inout DiagnosticList) -> Registry? {
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

        // The mirrors: one node per identity, edges from each declaration's order.
        var byIdentity: [String: MirrorEndpoint] = [:]
        var edges: [String: Set<String>] = [:]
        var indegree: [String: Int] = [:]
        for declaration in group {
            var previous: String?
            var seenHere = Set<String>()
            for mirror in declaration.mirrors {
                let id = mirror.identity
                if seenHere.contains(id) {
                    diagnostics.warning("mirror \(mirror.displayURL) is listed twice for \(source); the later entry is ignored", at: mirror.origins.first)
                    continue
                }
                seenHere.insert(id)
                if let existing = byIdentity[id] {
                    guard let joined = join(existing, mirror, source: source, into: &diagnostics) else {
                        failed = true
                        continue
                    }
                    byIdentity[id] = joined
                } else {
                    byIdentity[id] = mirror
                    indegree[id] = 0
                }
                if let previous, !(edges[previous]?.contains(id) ?? false) {
                    edges[previous, default: []].insert(id)
                    indegree[id, default: 0] += 1
                }
                previous = id
            }
        }
        var order: [String] = []
        var ready = indegree.filter { $0.value == 0 }.map(\.key).sorted()
        while !ready.isEmpty {
            let next = ready.removeFirst()
            order.append(next)
            for target in edges[next, default: []] {
                indegree[target]! -= 1
                if indegree[target] == 0 {
                    let index = ready.firstIndex(where: { $0 > target }) ?? ready.endIndex
                    ready.insert(target, at: index)
                }
            }
        }
        if order.count < byIdentity.count {
            let stuck = byIdentity.keys.filter { !order.contains($0) }.sorted()
            let places = group.map(\.location.description).joined(separator: ", ")
            diagnostics.error(
                "the mirror order for \(source) contradicts itself between declarations (\(stuck.map { byIdentity[$0]!.displayURL }.joined(separator: ", ")) are listed in opposite orders at \(places))",
                at: group.last!.location)
            return nil
        }
        let mirrors = order.map { byIdentity[$0]! }

        if policy == .neverContactSource, let own = mirrors.first(where: { isSource($0, of: source) }) {
            diagnostics.error(
                "source \(source) is NeverContactSource but is also listed as its own mirror (at \(own.origins.map(\.description).joined(separator: ", ")))",
                at: policyPlace)
            failed = true
        }
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
            rewrites: group.flatMap(\.rewrites), origins: group.map(\.location).sorted())
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

    /// Whether a mirror is the source itself (same host, same repository namespace).
    static func isSource(_ mirror: MirrorEndpoint, of source: RegistrySource) -> Bool {
        guard !mirror.overridePath else { return false }
        switch source {
        case .host(let host): return mirror.host == host && mirror.path.isEmpty
        case .repository(let host, let path): return mirror.host == host && mirror.path == "/" + path
        case .everyRegistry, .wildcardDomain: return false
        }
    }
}
