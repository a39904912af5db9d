import DesiredState
import Diagnostics
@preconcurrency import TOMLKit

/// Where containerd's CRI plugin would pull an image from, computed from the files it reads:
/// config.toml and its imports (or `containerd config dump`), then the hosts directory tree
/// (`config_path`), whoever wrote it. Follows containerd's remotes/docker/config/hosts.go
/// (hostPaths, loadHostDir, parseHostsFile, ConfigureHosts) and resolver.go (filterHosts).
public struct ContainerdExplainer {
    public var root: HostRoot
    public var configFile: String
    /// From `containerd --version`, when known (decides how imports merge and the defaults).
    public var containerdVersion: String?
    /// `containerd config dump` output, when it could be run; preferred over the files.
    public var configDump: String?

    public init(root: HostRoot, configFile: String = "/etc/containerd/config.toml", containerdVersion: String? = nil, configDump: String? = nil) {
        self.root = root
        self.configFile = configFile
        self.containerdVersion = containerdVersion
        self.configDump = configDump
    }

    public func explain(_ reference: ImageReference) -> Explanation {
        var result = Explanation(runtime: "containerd", reference: reference)
        if reference.unqualified {
            result.facts.append(.init("an unqualified name: the CRI plugin always reads it as \(reference.name)"))
        }
        // The configuration: the dump when we have one, else the files.
        let loaded: ContainerdConfigFiles?
        do {
            if let configDump {
                loaded = try ContainerdConfigFiles.parse(configDump, hostPath: "containerd config dump")
            } else {
                loaded = try ContainerdConfigFiles.load(configFile, root: root)
            }
        } catch {
            result.warnings.append(.init("containerd's configuration cannot be read (\(error.message)); containerd itself would refuse to start", file: error.location?.file, line: error.location?.line))
            loaded = nil
        }
        if loaded == nil, configDump == nil {
            result.facts.append(.init("no \(root.path(configFile)): containerd runs on its defaults"))
        }
        if configDump != nil { result.facts.append(.init("configuration: `containerd --config \(configFile) config dump` (the merged view containerd itself has)")) }
        let prerequisites = ContainerdPrerequisites.evaluate(loaded, configFile: configFile, root: root, containerdVersion: containerdVersion, preferredHostsDirectory: nil)
        let configPath = effectiveConfigPath(loaded, prerequisites)
        let configPathCheck = prerequisites.checks.first { $0.name == "config_path" }
        for check in prerequisites.checks where check.status == .wrong || check.status == .warning {
            // A dump has no real file: say where the value came from instead.
            result.warnings.append(.init(check.message, file: configDump == nil ? check.file : "containerd config dump", line: check.line))
        }
        if let version = containerdVersion { result.facts.append(.init("containerd \(version), config schema version \(prerequisites.schemaVersion)")) }

        guard let configPath, !configPath.isEmpty else {
            result.facts.append(.init("config_path is not set: the CRI plugin reads no hosts.toml", file: configDump == nil ? configPathCheck?.file : nil))
            for candidate in ["/etc/containerd/certs.d", "/etc/docker/certs.d"] {
                let hostDirectories = (FileSystem.list(root.path(candidate)) ?? []).filter { FileSystem.exists(root.path(candidate + "/" + $0 + "/hosts.toml")) }.sorted()
                if !hostDirectories.isEmpty {
                    result.warnings.append(
                        .init("\(root.path(candidate)) has hosts.toml for \(hostDirectories.joined(separator: ", ")), but config_path is not set: the CRI plugin never reads them (set config_path = \"\(candidate)\"; `mirror-agent check` shows where)"))
                }
            }
            explainLegacy(reference, prerequisites, into: &result)
            result.finish()
            return result
        }
        result.facts.append(.init("config_path = \"\(configPath)\" (CRI images plugin)", file: configDump == nil ? configPathCheck?.file : "containerd config dump", line: configPathCheck?.line))
        // Beside config_path, the deprecated `mirrors` (and on 1.x `configs.<host>.tls`) fail the
        // CRI plugin's config validation: the plugin does not load and no CRI pull happens at all
        // (ValidatePluginConfig on 1.x, ValidateImageConfig on 2.x).
        let legacyMirrorsSet = prerequisites.checks.contains { $0.name == "legacy_registry_mirrors" && $0.status == .wrong }
        let legacyTLSSet = prerequisites.containerdMajor < 2 && prerequisites.checks.contains { $0.name == "legacy_registry_configs_tls" && $0.status == .wrong }
        if legacyMirrorsSet || legacyTLSSet {
            let what = legacyMirrorsSet ? "`mirrors`" : "`configs.tls`"
            let check = prerequisites.checks.first { $0.name == (legacyMirrorsSet ? "legacy_registry_mirrors" : "legacy_registry_configs_tls") }
            result.warnings.append(
                .init("the CRI plugin does not load (\"\(what) cannot be set when `config_path` is provided\"): every CRI pull fails; move them into hosts.toml (`mirror-agent apply` does)",
                    file: configDump == nil ? check?.file : "containerd config dump", line: check?.line))
            result.finish()
            return result
        }
        var roots = configPath.split(separator: ":").map(String.init)
        if roots.count > 1 && prerequisites.criPullsThroughTransferService {
            // 2.1+ without use_local_image_pull: CRI PullImage goes through the transfer service,
            // which takes the whole string as ONE directory (containerd 12415). Judged on 2.1.9:
            // with a list, the CRI pull went to the registry itself despite a _default and a
            // host directory in its entries.
            result.facts.append(.init("containerd 2.1+ pulls for the CRI plugin through its transfer service, which reads \"\(configPath)\" as one directory: no hosts.toml is used (set use_local_image_pull = true, or one directory)"))
            roots = [configPath]
        } else if roots.count > 1 && prerequisites.containerdMajor >= 2 {
            result.facts.append(.init("the transfer service (containerd 2.1+) reads \"\(configPath)\" as one directory, which does not exist: its pulls ignore every hosts.toml"))
        }

        // hostDirFromRoots: the first root where any of host_port_, host:port, _default exists.
        var chosen: (root: String, directory: String)?
        var looked: [String] = []
        for hostsRoot in roots {
            for candidate in Self.hostPaths(reference.domain) {
                let path = hostsRoot + "/" + candidate
                if FileSystem.exists(root.path(path)) {
                    chosen = (hostsRoot, candidate)
                    break
                }
                looked.append(path)
            }
            if chosen != nil { break }
        }
        if !looked.isEmpty { result.facts.append(.init("not found: " + looked.map { root.path($0) }.joined(separator: ", "))) }
        guard let chosen else {
            result.facts.append(.init("no host directory for \(reference.domain): containerd pulls from the registry itself"))
            result.endpoints = [upstream(reference.domain, tls: [])]
            filter(&result)
            return result
        }
        let directory = chosen.root + "/" + chosen.directory
        result.facts.append(.init("host directory: \(root.path(directory))" + (chosen.directory == "_default" ? " (_default: no directory for \(reference.domain) itself)" : "")))
        loadHostDirectory(directory, reference: reference, containerdMajor: prerequisites.containerdMajor, into: &result)
        // A directory for the host that holds no hosts.toml (certificates only) hides _default.
        if chosen.directory != "_default", !FileSystem.exists(root.path(directory + "/hosts.toml")), FileSystem.exists(root.path(chosen.root + "/_default/hosts.toml")) {
            result.warnings.append(
                .init("\(root.path(directory)) has no hosts.toml (certificates only?), yet containerd picks it before _default: the mirrors in \(root.path(chosen.root + "/_default/hosts.toml")) do not apply to \(reference.domain)"))
        }
        filter(&result)
        return result
    }

    /// hosts.go hostPaths: `host_port_` (when there is a port), `host:port`, `_default`.
    static func hostPaths(_ host: String) -> [String] {
        var paths: [String] = []
        if let colon = host.lastIndex(of: ":"), colon > host.startIndex {
            paths.append(host[..<colon] + "_" + host[host.index(after: colon)...] + "_")
        }
        return paths + [host, "_default"]
    }

    /// The whole `config_path` string, from the file that owns it (the prerequisites check says
    /// which; on 1.x an import that touches the CRI plugin replaces its whole table).
    func effectiveConfigPath(_ loaded: ContainerdConfigFiles?, _ prerequisites: ContainerdPrerequisites) -> String? {
        let plugin = ContainerdConfig.registryPluginPath(version: prerequisites.schemaVersion)
        let key = plugin + ["registry", "config_path"]
        let files = loaded?.files ?? []
        let owner: ContainerdConfigFiles.File?
        if prerequisites.containerdMajor < 2 {
            owner = files.last { value($0.table, plugin) != nil }
        } else {
            owner = files.last { value($0.table, key) != nil }
        }
        if let owner, let text = value(owner.table, key)?.string { return text }
        if loaded == nil, configDump == nil, let v = containerdVersion, ContainerdPrerequisites.isAtLeast22(v) { return "/etc/containerd/certs.d:/etc/docker/certs.d" }
        return nil
    }

    /// Marks which endpoints this pull asks: a tag needs `pull` and `resolve`, a digest `pull`.
    func filter(_ result: inout Explanation) {
        let needed = result.reference.byDigest ? ["pull"] : ["pull", "resolve"]
        for i in result.endpoints.indices {
            let missing = needed.filter { !result.endpoints[i].capabilities.contains($0) }
            if !missing.isEmpty {
                result.endpoints[i].tried = false
                result.endpoints[i].skipped = "no \(missing.joined(separator: ", ")) capability (a \(result.reference.byDigest ? "digest" : "tag") pull needs \(needed.joined(separator: " and ")))"
            }
        }
        if !result.endpoints.contains(where: \.tried) {
            result.warnings.append(.init("no endpoint can serve this pull: containerd fails with \"no resolve hosts\""))
        }
        for endpoint in result.endpoints {
            for file in endpoint.tls.compactMap({ $0.split(separator: "=", maxSplits: 1).last.map(String.init) }) where file.hasPrefix("/") && !FileSystem.exists(root.path(file)) {
                result.warnings.append(.init("\(endpoint.url): TLS file \(root.path(file)) does not exist; containerd fails the pull (unable to read ...)", file: endpoint.file, line: endpoint.line))
            }
        }
        result.finish()
    }

    /// The registry itself, as ConfigureHosts fills it in when hosts.toml names no server.
    func upstream(_ host: String, tls: [String]) -> Explanation.Endpoint {
        var scheme = "https"
        var actualHost = host
        if host == "docker.io" {
            actualHost = "registry-1.docker.io"
        } else if isLocalhost(host) {
            let port = host.lastIndex(of: ":").map { String(host[host.index(after: $0)...]) } ?? ""
            scheme = port.isEmpty || port == "443" ? "https" : "http"
        }
        return Explanation.Endpoint(
            url: "\(scheme)://\(actualHost)/v2", host: actualHost, role: "upstream", capabilities: ["pull", "resolve", "push"], tls: tls)
    }

    func loadHostDirectory(_ directory: String, reference: ImageReference, containerdMajor: Int, into result: inout Explanation) {
        let hostsFile = directory + "/hosts.toml"
        let shown = root.path(hostsFile)
        var text: String?
        if case .success(let bytes) = FileSystem.read(shown, limit: 1 << 20), !bytes.isEmpty { text = String(decoding: bytes, as: UTF8.self) }
        guard let text else {
            result.facts.append(.init("no hosts.toml in \(root.path(directory)): containerd reads its *.crt/*.cert/*.key files for the registry itself"))
            result.endpoints = [upstream(reference.domain, tls: certificateFiles(directory))]
            return
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch {
            result.warnings.append(.init("\(shown) is not valid TOML: containerd logs \"failed to decode hosts.toml\" and pulls from the registry itself", file: shown))
            result.endpoints = [upstream(reference.domain, tls: certificateFiles(directory))]
            return
        }
        // containerd 1.x (go-toml v1) refuses a hosts.toml without any [host."..."] table
        // ("invalid `host` tree"), logs "failed to decode hosts.toml" and falls back to the
        // certificate files: `server` alone is ignored. 2.x reads it. Seen with 1.6.20.
        if table["host"]?.table == nil, containerdMajor < 2 {
            result.warnings.append(
                .init("\(shown) has no [host.\"...\"] table: containerd 1.x fails to decode it (\"invalid `host` tree\"), ignores `server` and pulls from the registry itself; add the server as a [host.\"...\"] entry", file: shown))
            result.endpoints = [upstream(reference.domain, tls: certificateFiles(directory))]
            return
        }
        let layout = TOMLLayout(text)
        let hostTables = layout.tables.filter { $0.path.count == 2 && $0.path[0] == "host" && !$0.isArray }
        var seen = Set<String>()
        for header in hostTables where seen.insert(header.path[1]).inserted {
            guard let config = table["host"]?.table?[header.path[1]]?.table else { continue }
            result.endpoints.append(endpoint(server: header.path[1], config: config, directory: directory, role: "mirror", file: shown, line: header.headerLine + 1))
        }
        if let server = table["server"]?.string, !server.isEmpty {
            let line = layout.key(["server"]).map { $0.firstLine + 1 }
            result.endpoints.append(endpoint(server: server, config: table, directory: directory, role: "server", file: shown, line: line))
            result.facts.append(.init("server = \"\(server)\": tried last, instead of \(reference.domain) itself", file: shown, line: line))
        } else {
            var last = upstream(reference.domain, tls: tlsFacts(table, directory: directory))
            last.file = shown
            result.endpoints.append(last)
            result.facts.append(.init("no server in hosts.toml: the registry itself (\(last.host)) is tried last", file: shown))
        }
        for key in table.keys.sorted() where !["server", "host", "capabilities", "ca", "client", "skip_verify", "header", "override_path"].contains(key) {
            result.warnings.append(.init("hosts.toml key \"\(key)\" is not one containerd reads", file: shown, line: layout.key([key]).map { $0.firstLine + 1 }))
        }
    }

    /// parseHostConfig: the URL, capabilities (all three when unset), TLS and override_path.
    func endpoint(server: String, config: TOMLTable, directory: String, role: String, file: String, line: Int?) -> Explanation.Endpoint {
        let withScheme = server.hasPrefix("http") ? server : "https://" + server
        var scheme = "https", host = withScheme, path = ""
        if let sep = withScheme.firstRange(of: "://") {
            scheme = String(withScheme[..<sep.lowerBound])
            let rest = withScheme[sep.upperBound...]
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            host = String(rest[..<slash])
            path = String(rest[slash...])
        }
        let overridePath = config["override_path"]?.bool ?? false
        if !path.isEmpty {
            path = Self.cleanPath(path)
            if !path.hasSuffix("/v2") && !overridePath { path += "/v2" }
        } else if !overridePath {
            path = "/v2"
        }
        var capabilities = ["pull", "resolve", "push"]
        if let list = config["capabilities"]?.array?.compactMap(\.string), !list.isEmpty {
            capabilities = ["pull", "resolve", "push"].filter { c in list.contains { $0.lowercased() == c } }
        }
        let tls = tlsFacts(config, directory: directory)
        var note: String?
        if scheme == "http", !tls.isEmpty, let port = host.split(separator: ":").last, host.contains(":"), port != "80" {
            note = "https first (TLS is configured), then http"
        }
        var e = Explanation.Endpoint(
            url: "\(scheme)://\(host)\(path)", host: host, role: role, capabilities: capabilities, tls: tls + (note.map { [$0] } ?? []),
            overridePath: overridePath, file: file, line: line)
        e.insecure = config["skip_verify"]?.bool ?? false
        return e
    }

    static func cleanPath(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    func tlsFacts(_ config: TOMLTable, directory: String) -> [String] {
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : directory + "/" + p }
        var facts: [String] = []
        if let ca = config["ca"]?.string { facts.append("ca=" + absolute(ca)) }
        for ca in config["ca"]?.array?.compactMap(\.string) ?? [] { facts.append("ca=" + absolute(ca)) }
        if let client = config["client"]?.string { facts.append("client=" + absolute(client)) }
        for item in config["client"]?.array ?? TOMLArray() {
            if let s = item.string { facts.append("client=" + absolute(s)) }
            for s in item.array?.compactMap(\.string) ?? [] { facts.append("client=" + absolute(s)) }
        }
        if config["skip_verify"]?.bool == true { facts.append("skip_verify") }
        return facts
    }

    /// loadCertFiles: *.crt are CAs, *.cert client certificates (with *.key).
    func certificateFiles(_ directory: String) -> [String] {
        let names = (FileSystem.list(root.path(directory)) ?? []).sorted()
        return names.filter { $0.hasSuffix(".crt") }.map { "ca=\(directory)/\($0)" } + names.filter { $0.hasSuffix(".cert") }.map { "client=\(directory)/\($0)" }
    }

    /// No config_path: the CRI plugin's deprecated registry.mirrors (endpoint list, then the
    /// registry itself unless listed), or the registry itself.
    func explainLegacy(_ reference: ImageReference, _ prerequisites: ContainerdPrerequisites, into result: inout Explanation) {
        let mirrors = prerequisites.legacyMirrors.filter { !$0.endpoints.isEmpty }
        guard let entry = mirrors.first(where: { $0.host == reference.domain }) ?? mirrors.first(where: { $0.host == "*" }) else {
            result.endpoints = [upstream(reference.domain, tls: [])]
            filter(&result)
            return
        }
        result.facts.append(.init("deprecated registry.mirrors.\"\(entry.host)\" applies", file: entry.location.file, line: entry.location.line))
        var upstreamListed = false
        for url in entry.endpoints {
            var e = legacyEndpoint(url, file: entry.location.file, line: entry.location.line)
            if e.host == reference.domain || (reference.domain == "docker.io" && e.host == "registry-1.docker.io") {
                e.role = "upstream"
                upstreamListed = true
            }
            result.endpoints.append(e)
        }
        if !upstreamListed { result.endpoints.append(upstream(reference.domain, tls: [])) }
        filter(&result)
    }
}

extension ContainerdExplainer {
    /// One `endpoint` of the deprecated registry.mirrors, as the CRI plugin's registryEndpoints
    /// and registryHosts read it: without a scheme, `http` for a loopback host and `https`
    /// otherwise (addDefaultScheme); an empty path is `/v2`, any other path is used as written
    /// (no `/v2` appended); capabilities pull and resolve.
    func legacyEndpoint(_ written: String, file: String?, line: Int?) -> Explanation.Endpoint {
        var scheme = "", rest = Substring(written)
        if let sep = written.firstRange(of: "://") {
            scheme = String(written[..<sep.lowerBound])
            rest = written[sep.upperBound...]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let host = String(rest[..<slash])
        let path = rest[slash...].isEmpty ? "/v2" : String(rest[slash...])
        if scheme.isEmpty { scheme = isLocalhost(host) ? "http" : "https" }
        return Explanation.Endpoint(
            url: "\(scheme)://\(host)\(path)", host: host, role: "mirror", capabilities: ["pull", "resolve"], file: file, line: line)
    }
}

/// docker.IsLocalhost: `localhost` or a loopback address, with or without a port.
func isLocalhost(_ host: String) -> Bool {
    var name = Substring(host)
    if name.hasPrefix("["), let close = name.firstIndex(of: "]") {
        name = name[name.index(after: name.startIndex)..<close]
    } else if let colon = name.lastIndex(of: ":"), name.filter({ $0 == ":" }).count == 1 {
        name = name[..<colon]
    }
    return name == "localhost" || name.hasPrefix("127.") || name == "::1"
}
