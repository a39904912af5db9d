import DesiredState
import Diagnostics
@preconcurrency import TOMLKit

/// Where CRI-O (containers/image) would pull an image from, computed from registries.conf and
/// its drop-ins in reading order. Follows containers/image pkg/sysregistriesv2: a drop-in's
/// `[[registry]]` replaces the one with the same prefix, the longest matching prefix wins
/// (`example.com` also matches `example.com:5000/...`), mirrors are filtered by
/// `pull-from-mirror` / `mirror-by-digest-only`, and the primary location is tried last.
public struct CRIOExplainer {
    public var root: HostRoot
    public var registriesConf: String
    public var dropInDirectory: String
    public var certDirectories: [String]

    public init(
        root: HostRoot, registriesConf: String = "/etc/containers/registries.conf", dropInDirectory: String = "/etc/containers/registries.conf.d",
        certDirectories: [String] = ["/etc/containers/certs.d", "/etc/docker/certs.d"]
    ) {
        self.root = root
        self.registriesConf = registriesConf
        self.dropInDirectory = dropInDirectory
        self.certDirectories = certDirectories
    }

    struct Mirror {
        var location: String
        var insecure: Bool
        var pullFromMirror: String
        var line: Int
    }

    struct Registry {
        var prefix: String
        var location: String
        var blocked: Bool
        var insecure: Bool
        var mirrorByDigestOnly: Bool
        var mirrors: [Mirror]
        var file: String
        var line: Int
    }

    struct Merged {
        var files: [String] = []
        var registries: [Registry] = []
        var search: (list: [String], file: String, line: Int?)?
        var shortNameMode: (mode: String, file: String)?
        var aliases: [String: (target: String, file: String, line: Int?)] = [:]
    }

    /// registries.conf, then registries.conf.d/*.conf sorted by name.
    func load(warnings: inout [Explanation.Fact]) -> Merged {
        var merged = Merged()
        var paths = [registriesConf]
        let names = (FileSystem.list(root.path(dropInDirectory)) ?? []).filter { $0.hasSuffix(".conf") }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        paths += names.map { dropInDirectory + "/" + $0 }
        for hostPath in paths {
            let shown = root.path(hostPath)
            guard case .success(let bytes) = FileSystem.read(shown, limit: 16 << 20) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            let table: TOMLTable
            do {
                table = try TOMLTable(string: text)
            } catch {
                warnings.append(.init("\(shown) is not valid TOML: containers/image refuses every pull until it is fixed", file: shown))
                continue
            }
            merged.files.append(shown)
            let layout = TOMLLayout(text)
            let registryHeaders = layout.tables.filter { $0.path == ["registry"] && $0.isArray }
            let mirrorHeaders = layout.tables.filter { $0.path == ["registry", "mirror"] && $0.isArray }
            for (index, item) in (table["registry"]?.array ?? TOMLArray()).enumerated() {
                guard let r = item.table else { continue }
                let header = index < registryHeaders.count ? registryHeaders[index] : nil
                let location = r["location"]?.string ?? ""
                let prefix = r["prefix"]?.string ?? location
                var mirrors: [Mirror] = []
                for m in r["mirror"]?.array ?? TOMLArray() {
                    guard let m = m.table else { continue }
                    let line = header.flatMap { h in mirrorHeaders.filter { $0.headerLine > h.headerLine && $0.headerLine < (registryHeaders.first { $0.headerLine > h.headerLine }?.headerLine ?? Int.max) }.dropFirst(mirrors.count).first }
                    mirrors.append(Mirror(location: m["location"]?.string ?? "", insecure: m["insecure"]?.bool ?? false, pullFromMirror: m["pull-from-mirror"]?.string ?? "all", line: (line?.headerLine ?? header?.headerLine ?? -1) + 1))
                }
                if r["mirror-by-digest-only"] != nil {
                    warnings.append(.init("mirror-by-digest-only is deprecated; use pull-from-mirror = \"digest-only\" on each mirror", file: shown, line: (header?.headerLine ?? -1) + 1))
                }
                let registry = Registry(
                    prefix: prefix, location: location, blocked: r["blocked"]?.bool ?? false, insecure: r["insecure"]?.bool ?? false,
                    mirrorByDigestOnly: r["mirror-by-digest-only"]?.bool ?? false, mirrors: mirrors, file: shown, line: (header?.headerLine ?? -1) + 1)
                if let existing = merged.registries.firstIndex(where: { $0.prefix == prefix }) {
                    if merged.registries[existing].file != shown {
                        warnings.append(.init("[[registry]] prefix \"\(prefix)\" in \(shown) replaces the one in \(merged.registries[existing].file):\(merged.registries[existing].line) whole", file: shown, line: registry.line))
                    }
                    merged.registries[existing] = registry
                } else {
                    merged.registries.append(registry)
                }
            }
            if let list = table["unqualified-search-registries"]?.array {
                merged.search = (list.compactMap(\.string), shown, layout.key(["unqualified-search-registries"]).map { $0.firstLine + 1 })
            }
            if let v1 = table["registries"]?.table {
                warnings.append(.init("the v1 [registries.*] format is deprecated (use [[registry]] and unqualified-search-registries)", file: shown))
                if let list = v1["search"]?.table?["registries"]?.array { merged.search = (list.compactMap(\.string), shown, nil) }
            }
            if let mode = table["short-name-mode"]?.string { merged.shortNameMode = (mode, shown) }
            if let aliases = table["aliases"]?.table {
                for key in aliases.keys {
                    if let target = aliases[key]?.string { merged.aliases[key] = (target, shown, layout.key(["aliases", key]).map { $0.firstLine + 1 }) }
                }
            }
        }
        return merged
    }

    public func explain(_ reference: ImageReference) -> Explanation {
        var result = Explanation(runtime: "cri-o", reference: reference)
        var warnings: [Explanation.Fact] = []
        let merged = load(warnings: &warnings)
        result.warnings = warnings
        result.facts.append(.init("files, in reading order: " + (merged.files.isEmpty ? "none" : merged.files.joined(separator: ", "))))
        var target = reference
        if reference.unqualified {
            // Short names: an alias first, else each unqualified-search-registry in order.
            let shortName = String(reference.written.split(separator: "@")[0].split(separator: ":")[0])
            if let alias = merged.aliases[shortName], case .success(var aliased) = ImageReference.parse(alias.target) {
                aliased.tag = reference.tag
                aliased.digest = reference.digest
                aliased.written = reference.written
                target = aliased
                result.facts.append(.init("short name \"\(shortName)\" is an alias for \(alias.target)", file: alias.file, line: alias.line))
            } else if let search = merged.search, let first = search.list.first {
                target = reference.qualified(on: first)
                result.facts.append(
                    .init(
                        "an unqualified name: CRI-O tries \(search.list.map { reference.qualified(on: $0).name }.joined(separator: ", ")) in order; shown for the first",
                        file: search.file, line: search.line))
            } else {
                result.facts.append(.init("an unqualified name and no unqualified-search-registries: the short name cannot be resolved"))
                result.warnings.append(.init("\(reference.written) has no registry and no unqualified-search-registries is set: CRI-O refuses the pull"))
                result.finish()
                return result
            }
            if let mode = merged.shortNameMode, mode.mode == "enforcing" {
                result.facts.append(.init("short-name-mode = \"enforcing\" applies to podman with a terminal; CRI-O tries the candidates in order", file: mode.file))
            }
            result.reference = target
            result.reference.written = reference.written
        }
        let name = target.name
        let suffix = target.digest.map { "@" + $0 } ?? ":" + (target.tag ?? "latest")
        // FindRegistry: the longest matching prefix.
        var winner: Registry?
        for registry in merged.registries where Self.matchLength(name, registry.prefix) != nil {
            if registry.prefix.count > (winner?.prefix.count ?? 0) { winner = registry }
        }
        guard let winner else {
            result.facts.append(.init("no [[registry]] prefix matches \(name): CRI-O pulls from \(target.domain) itself"))
            result.endpoints = [endpoint(location: name, reference: name + suffix, role: "upstream", insecure: false, file: nil, line: nil)]
            result.finish()
            return result
        }
        result.facts.append(.init("[[registry]] prefix \"\(winner.prefix)\" wins (longest matching prefix)", file: winner.file, line: winner.line))
        if !winner.prefix.hasPrefix("*."), name.count > winner.prefix.count, name[name.index(name.startIndex, offsetBy: winner.prefix.count)] == ":" {
            result.warnings.append(.init("prefix \"\(winner.prefix)\" also matches \(target.domain): containers/image compares text, so a host without a port matches the same host with any port", file: winner.file, line: winner.line))
        }
        if winner.blocked {
            result.blocked = true
            result.facts.append(.init("blocked = true: containers/image refuses to pull \(name)", file: winner.file, line: winner.line))
            result.finish()
            return result
        }
        let rest = String(name.dropFirst(Self.matchLength(name, winner.prefix) ?? winner.prefix.count))
        let primaryLocation = winner.prefix.hasPrefix("*.") || winner.location.isEmpty ? name : winner.location + rest
        for mirror in winner.mirrors {
            var e = endpoint(location: mirror.location + rest, reference: mirror.location + rest + suffix, role: "mirror", insecure: mirror.insecure, file: winner.file, line: mirror.line)
            if winner.mirrorByDigestOnly && !target.byDigest {
                e.tried = false
                e.skipped = "mirror-by-digest-only = true and this is a tag pull"
            } else if mirror.pullFromMirror == "digest-only" && !target.byDigest {
                e.tried = false
                e.skipped = "pull-from-mirror = \"digest-only\" and this is a tag pull"
            } else if mirror.pullFromMirror == "tag-only" && target.byDigest {
                e.tried = false
                e.skipped = "pull-from-mirror = \"tag-only\" and this is a digest pull"
            }
            result.endpoints.append(e)
        }
        result.endpoints.append(endpoint(location: primaryLocation, reference: primaryLocation + suffix, role: "upstream", insecure: winner.insecure, file: winner.file, line: winner.line))
        result.finish()
        return result
    }

    func endpoint(location: String, reference: String, role: String, insecure: Bool, file: String?, line: Int?) -> Explanation.Endpoint {
        let host = String(location.split(separator: "/", maxSplits: 1).first ?? "")
        let connect = host == "docker.io" ? "registry-1.docker.io" : host
        var e = Explanation.Endpoint(url: location, host: connect, role: role, insecure: insecure, pulls: reference, file: file, line: line)
        for directory in certDirectories where FileSystem.isDirectory(root.path(directory + "/" + host)) {
            e.tls.append("certs.d=\(directory)/\(host)")
        }
        return e
    }

    /// refMatchingPrefix: the prefix, then end of text or one of `:` `/` `@`; `*.domain` matches
    /// subdomains of the first component.
    static func matchLength(_ name: String, _ prefix: String) -> Int? {
        if prefix.hasPrefix("*.") {
            let tail = prefix.dropFirst()
            guard let range = name.firstRange(of: tail), !name[..<range.lowerBound].contains("/") else { return nil }
            if range.upperBound == name.endIndex || ":/@".contains(name[range.upperBound]) { return name.distance(from: name.startIndex, to: range.upperBound) }
            return nil
        }
        guard name.hasPrefix(prefix) else { return nil }
        if name.count == prefix.count { return prefix.count }
        let next = name[name.index(name.startIndex, offsetBy: prefix.count)]
        return ":/@".contains(next) ? prefix.count : nil
    }
}
