import DesiredState
import Diagnostics
@preconcurrency import TOMLKit

#if canImport(Glibc)
import Glibc
#endif

/// containerd's configuration files as loaded: the main file, then its imports in order.
public struct ContainerdConfigFiles {
    public struct File {
        public var hostPath: String
        public var text: String
        /// Its permission bits, when read from disk.
        public var mode: UInt32?
        var layout: TOMLLayout
        var table: TOMLTable
    }

    public var files: [File]
    /// The config schema of the main file (1: no `version`, 2: containerd 1.6/1.7, 3: 2.x).
    public var schemaVersion: Int

    /// Loads the main file and its `imports` (globs, resolved under the root); nil when the
    /// main file does not exist.
    public static func load(_ mainPath: String, root: HostRoot) throws(Diagnostic) -> ContainerdConfigFiles? {
        guard let main = try file(mainPath, root: root) else { return nil }
        var files = [main]
        let imports = main.table["imports"]?.array?.compactMap(\.string) ?? []
        let directory = String(mainPath[..<(mainPath.lastIndex(of: "/") ?? mainPath.startIndex)])
        for pattern in imports {
            let absolute = pattern.hasPrefix("/") ? pattern : directory + "/" + pattern
            for path in expand(absolute, root: root) where path != mainPath {
                if let imported = try file(path, root: root) { files.append(imported) }
            }
        }
        return ContainerdConfigFiles(files: files, schemaVersion: main.table["version"]?.int ?? 1)
    }

    /// Parses text that is not on disk (a candidate patch, or tests).
    public static func parse(_ text: String, hostPath: String) throws(Diagnostic) -> ContainerdConfigFiles {
        let file = try parseFile(text, hostPath: hostPath, shownAs: hostPath)
        return ContainerdConfigFiles(files: [file], schemaVersion: file.table["version"]?.int ?? 1)
    }

    static func file(_ hostPath: String, root: HostRoot) throws(Diagnostic) -> File? {
        let path = root.path(hostPath)
        switch FileSystem.read(path, limit: 16 << 20) {
        case .failure(.missing): return nil
        case .failure(let error): throw .error("cannot read: \(error)", at: .file(path))
        case .success(let bytes):
            var parsed = try parseFile(String(decoding: bytes, as: UTF8.self), hostPath: hostPath, shownAs: path)
            var info = stat()
            if stat(path, &info) == 0 { parsed.mode = UInt32(info.st_mode & 0o7777) }
            return parsed
        }
    }

    static func parseFile(_ text: String, hostPath: String, shownAs: String) throws(Diagnostic) -> File {
        do {
            return File(hostPath: hostPath, text: text, mode: nil, layout: TOMLLayout(text), table: try TOMLTable(string: text))
        } catch let error as TOMLParseError {
            throw .error("invalid TOML: \(error.description)", at: SourceLocation(file: shownAs, line: error.source.begin.line, column: error.source.begin.column))
        } catch {
            throw .error("invalid TOML: \(error)", at: .file(shownAs))
        }
    }

    static func expand(_ pattern: String, root: HostRoot) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(root.path(pattern), 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { i in
            result.gl_pathv[i].flatMap { root.hostPath(of: String(cString: $0)) }
        }.sorted()
    }
}

/// Whether containerd is set up for registry mirrors, and how to fix it when it is not.
///
/// Spegel-style peer mirrors need `config_path` set (or hosts.toml is never read by the CRI
/// plugin) and `discard_unpacked_layers = false`; deprecated `registry.mirrors` and
/// `registry.configs.*.tls` must go once `config_path` is set, or the CRI plugin fails to load
/// while containerd itself keeps running.
public struct ContainerdPrerequisites: Sendable {
    public enum Status: String, Sendable, Codable {
        case ok, missing, wrong
        /// Not wrong enough to change the admin's file, but worth knowing.
        case warning
    }

    public struct Check: Sendable, Equatable, Codable {
        public var name: String
        public var status: Status
        public var message: String
        /// The file and line to change (a path on this machine), when there is one.
        public var file: String?
        public var line: Int?
    }

    public var configFile: String
    public var exists: Bool
    public var schemaVersion: Int
    public var containerdMajor: Int
    public var checks: [Check]
    /// The hosts directory to render into: the first entry of `config_path`, or the one the fix
    /// sets.
    public var hostsDirectory: String
    /// Entries of the deprecated `registry.mirrors` / `registry.configs` to migrate.
    public var legacyMirrors: [LegacyContainerdMirror]
    /// The patched files that would fix every check (empty when nothing needs fixing).
    public var fixes: [ConfigFix]
    /// containerd 2.1+ without `use_local_image_pull`: `config_path` must be one directory.
    public var criPullsThroughTransferService = false
    /// From `containerd --version`, when known.
    public var containerdVersion: String?

    public var needsFix: Bool { checks.contains { $0.status == .missing || $0.status == .wrong } }

    public struct ConfigFix: Sendable, Equatable {
        public var hostPath: String
        public var before: String?
        public var after: String
        public var changes: [String]
        /// The mode the file must get (0600 once it holds credentials); nil keeps its mode.
        public var mode: UInt32? = nil
        /// Whether containerd must restart for it: false when only the mode changes.
        public var needsRestart: Bool { before != after }
    }

    /// The comment the agent writes above each credentials table it owns: a table with it is
    /// the agent's to replace or remove; any other is the admin's.
    public static let credentialsMarker = "# mirror-agent: credentials for"

    /// Inspects containerd's configuration under the root.
    /// - Parameters:
    ///   - containerdVersion: from `containerd --version`, when known; decides how imports merge
    ///     (1.x replaces a whole plugin table from an import, 2.x merges) and the defaults.
    ///   - preferredHostsDirectory: what `config_path` is set to when it is missing.
    ///   - credentials: registry credentials of the desired state, written as
    ///     `registry.configs."<host>".auth` where the CRI plugin reads them.
    public static func inspect(
        configFile: String, root: HostRoot, containerdVersion: String?, preferredHostsDirectory: String?, credentials: [HostCredentials] = []
    ) throws(Diagnostic) -> ContainerdPrerequisites {
        let loaded = try ContainerdConfigFiles.load(configFile, root: root)
        return evaluate(
            loaded, configFile: configFile, root: root, containerdVersion: containerdVersion, preferredHostsDirectory: preferredHostsDirectory,
            credentials: credentials)
    }

    static func major(_ version: String?, schema: Int) -> Int {
        if let version, let first = version.drop(while: { $0 == "v" }).split(separator: ".").first, let n = Int(first) { return n }
        return schema >= 3 ? 2 : 1
    }

    static func evaluate(
        _ loaded: ContainerdConfigFiles?, configFile: String, root: HostRoot, containerdVersion: String?, preferredHostsDirectory: String?,
        credentials: [HostCredentials] = [], checkModes: Bool = true
    ) -> ContainerdPrerequisites {
        let schema = loaded?.schemaVersion ?? (major(containerdVersion, schema: 2) >= 2 ? 3 : 2)
        let containerdMajor = major(containerdVersion, schema: schema)
        let plugin = ContainerdConfig.registryPluginPath(version: schema)
        let configPathKey = plugin + ["registry", "config_path"]
        let discardKey = schema >= 3 ? ["plugins", "io.containerd.cri.v1.images", "discard_unpacked_layers"] : plugin + ["containerd", "discard_unpacked_layers"]
        let mirrorsKey = plugin + ["registry", "mirrors"]
        let configsKey = plugin + ["registry", "configs"]
        let files = loaded?.files ?? []

        // Which file's value counts: on 1.x an import that touches the CRI plugin replaces the
        // whole plugin table; on 2.x the last file that sets a key wins.
        func owner(of key: [String]) -> ContainerdConfigFiles.File? {
            if containerdMajor < 2 {
                return files.last { value($0.table, plugin) != nil }.flatMap { value($0.table, key) != nil ? $0 : nil }
            }
            return files.last { value($0.table, key) != nil }
        }
        func place(_ file: ContainerdConfigFiles.File?, _ key: [String]) -> (String?, Int?) {
            guard let file else { return (nil, nil) }
            let line = file.layout.key(key).map { $0.firstLine + 1 }
                ?? file.layout.tables.first { $0.path.starts(with: key) }.map { $0.headerLine + 1 }
                ?? file.layout.keys.first { $0.path.starts(with: key) }.map { $0.firstLine + 1 }
            return (root.path(file.hostPath), line)
        }
        // The file a fix goes into: the one that owns the CRI plugin on 1.x (never a new import
        // there: 1.x would replace the whole plugin table from it), else the main file.
        let pluginOwner = containerdMajor < 2 ? files.last { value($0.table, plugin) != nil } : nil
        let fixTarget = pluginOwner ?? files.first

        var checks: [Check] = []
        var result = ContainerdPrerequisites(
            configFile: configFile, exists: loaded != nil, schemaVersion: schema, containerdMajor: containerdMajor, checks: [],
            hostsDirectory: preferredHostsDirectory ?? Reconciler.defaultHostsDirectory, legacyMirrors: [], fixes: [])

        // config_path. What the CRI plugin makes of it depends on the version:
        //  * 2.2+ reads a missing config_path (and an empty one in a version-2 file, which it
        //    migrates) as "/etc/containerd/certs.d:/etc/docker/certs.d";
        //  * 2.1+ pulls through the transfer service (unless use_local_image_pull), which takes
        //    config_path as ONE directory: a list there means no hosts.toml is ever found.
        let version = ContainerdVersion(containerdVersion)
        let useLocalImagePull = schema >= 3 && files.last { value($0.table, plugin + ["use_local_image_pull"]) != nil }
            .flatMap { value($0.table, plugin + ["use_local_image_pull"])?.bool } == true
        let transfer = (version?.criPullsThroughTransferService ?? (schema >= 3)) && !useLocalImagePull
        result.criPullsThroughTransferService = transfer
        result.containerdVersion = containerdVersion
        let configPathOwner = owner(of: configPathKey)
        let configured = configPathOwner.flatMap { value($0.table, configPathKey)?.string }
        var configPath = configured
        var defaulted = false
        if let fallback = version?.defaultConfigPath {
            let ownerSchema = configPathOwner?.table["version"]?.int ?? schema
            if configured == nil || (configured == "" && ownerSchema < 3) {
                configPath = fallback
                defaulted = true
            }
        } else if loaded == nil, containerdVersion.map(isAtLeast22) == true {
            configPath = "/etc/containerd/certs.d:/etc/docker/certs.d"
            defaulted = true
        }
        var setConfigPath: String?
        if let configPath, !configPath.isEmpty {
            let entries = configPath.split(separator: ":").map(String.init)
            result.hostsDirectory = entries[0]
            let (file, line) = place(configPathOwner, configPathKey)
            let shown = defaulted ? "config_path is \(configured == nil ? "not set" : "empty"), which containerd \(containerdVersion ?? "2.2+") reads as \(configPath)" : "config_path is a list (\(configPath))"
            if entries.count > 1 && transfer {
                setConfigPath = entries[0]
                checks.append(Check(name: "config_path", status: .wrong, message: "\(shown): containerd 2.1+ pulls images for the CRI plugin through its transfer service, which reads the whole string as one directory, so no hosts.toml is used; the fix sets it to \"\(entries[0])\"", file: file ?? fixTarget.map { root.path($0.hostPath) } ?? root.path(configFile), line: line))
            } else if entries.count > 1 {
                checks.append(Check(name: "config_path", status: .warning, message: "\(shown); hosts.toml files go to its first entry, \(entries[0]). With use_local_image_pull the CRI plugin reads the list; ctr and other transfer-service clients need --hosts-dir \(entries[0])", file: file, line: line))
            } else {
                checks.append(Check(name: "config_path", status: .ok, message: "config_path = \"\(configPath)\"", file: file, line: line))
            }
        } else {
            setConfigPath = result.hostsDirectory
            let (file, line) = configPathOwner != nil ? place(configPathOwner, configPathKey) : (fixTarget.map { root.path($0.hostPath) } ?? root.path(configFile), nil)
            checks.append(Check(name: "config_path", status: .missing, message: "config_path is not set, so the CRI plugin never reads hosts.toml; the fix sets it to \"\(result.hostsDirectory)\"", file: file, line: line))
        }

        // discard_unpacked_layers
        let discardOwner = owner(of: discardKey)
        var setDiscard = false
        if let discardOwner, value(discardOwner.table, discardKey)?.bool == true {
            let (file, line) = place(discardOwner, discardKey)
            checks.append(Check(name: "discard_unpacked_layers", status: .wrong, message: "discard_unpacked_layers = true: pulled layers are deleted after unpacking, so this node cannot serve them to peers; the fix sets it to false", file: file, line: line))
            setDiscard = true
        } else {
            let (file, line) = place(discardOwner, discardKey)
            checks.append(Check(name: "discard_unpacked_layers", status: .ok, message: discardOwner == nil ? "discard_unpacked_layers is false (the default)" : "discard_unpacked_layers = false", file: file, line: line))
        }

        // Deprecated registry.mirrors / registry.configs.*.tls
        var legacyFiles: [ContainerdConfigFiles.File] = []
        if let mirrorsOwner = owner(of: mirrorsKey), let mirrors = value(mirrorsOwner.table, mirrorsKey)?.table, !mirrors.isEmpty {
            let (file, line) = place(mirrorsOwner, mirrorsKey)
            let configs = owner(of: configsKey).flatMap { value($0.table, configsKey)?.table }
            for host in mirrors.keys.sorted() {
                let endpoints = mirrors[host]?.table?["endpoint"]?.array?.compactMap(\.string) ?? []
                let tls = configs?[host]?.table?["tls"]?.table
                result.legacyMirrors.append(
                    LegacyContainerdMirror(
                        host: host, endpoints: endpoints, tls: tlsSettings(tls),
                        location: SourceLocation(file: file ?? configFile, line: line ?? 1, column: 1)))
            }
            checks.append(Check(name: "legacy_registry_mirrors", status: .wrong, message: "deprecated registry.mirrors for \(mirrors.keys.sorted().joined(separator: ", ")): with config_path set they make the CRI plugin fail to load; the fix moves them into hosts.toml and removes them here", file: file, line: line))
            legacyFiles.append(mirrorsOwner)
        } else {
            checks.append(Check(name: "legacy_registry_mirrors", status: .ok, message: "no deprecated registry.mirrors", file: nil, line: nil))
        }
        var tlsHosts: [String] = []
        if let configsOwner = owner(of: configsKey), let configs = value(configsOwner.table, configsKey)?.table {
            tlsHosts = configs.keys.filter { configs[$0]?.table?["tls"] != nil }.sorted()
            let desiredHosts = Set(credentials.map { ContainerdCredentials.contactedHost($0.host) })
            let authHosts = configs.keys.filter { configs[$0]?.table?["auth"] != nil && !desiredHosts.contains($0) }
                .filter { host in !files.contains { ContainerdCredentials.isOurs($0, configsKey + [host, "auth"]) } }.sorted()
            let (file, line) = place(configsOwner, configsKey)
            if !tlsHosts.isEmpty {
                let covered = Set(result.legacyMirrors.map(\.host))
                for host in tlsHosts where !covered.contains(host) {
                    result.legacyMirrors.append(
                        LegacyContainerdMirror(
                            host: host, endpoints: [], tls: tlsSettings(configs[host]?.table?["tls"]?.table),
                            location: SourceLocation(file: file ?? configFile, line: line ?? 1, column: 1)))
                }
                checks.append(Check(name: "legacy_registry_configs_tls", status: .wrong, message: "deprecated registry.configs.<host>.tls for \(tlsHosts.joined(separator: ", ")): with config_path set they make the CRI plugin fail to load; the fix moves them into hosts.toml and removes them here", file: file, line: line))
                if !legacyFiles.contains(where: { $0.hostPath == configsOwner.hostPath }) { legacyFiles.append(configsOwner) }
            }
            if !authHosts.isEmpty {
                checks.append(Check(name: "legacy_registry_configs_auth", status: .warning, message: "registry.configs.<host>.auth for \(authHosts.joined(separator: ", ")) is not from the desired state and is left in place (containerd still reads it)", file: file, line: line))
            }
        }
        // Registry credentials: registry.configs."<host>".auth, where the CRI plugin reads them.
        let credentialPlan = ContainerdCredentials.plan(
            credentials, files: files, configsKey: configsKey, containerdMajor: containerdMajor, fixTarget: fixTarget,
            configFile: configFile, root: root, checkModes: checkModes)
        checks += credentialPlan.checks
        result.checks = checks

        // The fix: the smallest edit of each file that owns a wrong setting.
        guard result.needsFix else { return result }
        var edits: [String: (file: ContainerdConfigFiles.File?, editor: TOMLEditor, changes: [String])] = [:]
        func editor(for file: ContainerdConfigFiles.File?) -> String {
            let key = file?.hostPath ?? configFile
            if edits[key] == nil { edits[key] = (file, TOMLEditor(file?.text ?? "version = \(schema)\n"), []) }
            return key
        }
        if let setConfigPath {
            let key = editor(for: configPathOwner ?? fixTarget)
            edits[key]!.editor.set(configPathKey, TOML.string(setConfigPath))
            edits[key]!.changes.append("set config_path = \"\(setConfigPath)\"")
        }
        if setDiscard {
            let key = editor(for: discardOwner)
            edits[key]!.editor.set(discardKey, "false")
            edits[key]!.changes.append("set discard_unpacked_layers = false")
        }
        for file in legacyFiles {
            let key = editor(for: file)
            edits[key]!.editor.remove(mirrorsKey)
            for host in tlsHosts { edits[key]!.editor.remove(configsKey + [host, "tls"]) }
            edits[key]!.changes.append("removed deprecated registry mirrors/TLS (migrated into hosts.toml)")
        }
        for edit in credentialPlan.edits {
            let key = editor(for: edit.file)
            for host in edit.remove {
                edits[key]!.editor.removeBlock(configsKey + [host, "auth"], markerPrefix: credentialsMarker)
            }
            for block in edit.append { edits[key]!.editor.append(block) }
            edits[key]!.changes += edit.changes
        }
        result.fixes = edits.keys.sorted().map { path in
            let edit = edits[path]!
            var fix = ConfigFix(hostPath: path, before: edit.file?.text, after: edit.editor.text, changes: edit.changes)
            // A file that holds credentials is readable by root alone.
            if ContainerdCredentials.holdsOurCredentials(fix.after), (edit.file?.mode ?? 0o644) & 0o077 != 0 {
                fix.mode = 0o600
                fix.changes.append("mode 0600 (it holds registry credentials)")
            }
            return fix
        }
        return result
    }

    /// The checks for a candidate file on its own (used to verify a fix before it is written).
    public static func evaluateCandidate(
        _ candidate: ContainerdConfigFiles, configFile: String, root: HostRoot, containerdVersion: String?, containerdMajor: Int,
        credentials: [HostCredentials] = []
    ) -> [Check] {
        evaluate(
            candidate, configFile: configFile, root: root, containerdVersion: containerdVersion ?? "\(containerdMajor).0.0", preferredHostsDirectory: nil,
            credentials: credentials, checkModes: false
        ).checks
    }

    static func isAtLeast22(_ version: String) -> Bool {
        let parts = version.drop(while: { $0 == "v" }).split(separator: ".").compactMap { Int($0.prefix(while: \.isNumber)) }
        return parts.count >= 2 && (parts[0] > 2 || (parts[0] == 2 && parts[1] >= 2))
    }

    static func tlsSettings(_ table: TOMLTable?) -> TLSSettings {
        guard let table else { return TLSSettings() }
        return TLSSettings(
            caFiles: table["ca_file"]?.string.map { [$0] } ?? [], clientCertificate: table["cert_file"]?.string,
            clientKey: table["key_file"]?.string, skipVerify: table["insecure_skip_verify"]?.bool ?? false)
    }
}

func value(_ table: TOMLTable, _ path: [String]) -> TOMLValueConvertible? {
    var node: TOMLValueConvertible? = table
    for key in path {
        guard let t = node?.table else { return nil }
        node = t[key]
    }
    return node
}
