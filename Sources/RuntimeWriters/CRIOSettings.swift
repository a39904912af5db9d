import DesiredState
import Diagnostics
import TOMLKit

/// The CRI-O settings that change what the agent must do after the registries drop-in changed,
/// read as CRI-O reads them (cri-o/cri-o internal/criocli/criocli.go mergeConfigFiles,
/// pkg/config/config.go UpdateFromPath): /etc/crio/crio.conf first, then every file under
/// /etc/crio/crio.conf.d, walked recursively in lexical order (Go's filepath.Walk, no suffix
/// filter), each decoded over the result so far: a later file wins for the keys it sets.
public struct CRIOSettings: Sendable, Equatable {
    /// `[crio.image] auto_reload_registries` (CRI-O 1.30+, default false): CRI-O watches
    /// /etc/containers/registries.conf.d with inotify and reloads registries by itself.
    public var autoReloadRegistries = false
    /// The file that set `autoReloadRegistries` last, as a host path.
    public var autoReloadSetIn: String?
    /// Files CRI-O would fail to read (it would not start with them); the agent keeps its default.
    public var problems: [String] = []

    public static let mainFile = "/etc/crio/crio.conf"
    public static let dropInDirectory = "/etc/crio/crio.conf.d"

    public init() {}

    /// The settings from files in CRI-O's order, each `(hostPath, text)`.
    public static func parse(_ files: [(path: String, text: String)]) -> CRIOSettings {
        var settings = CRIOSettings()
        for file in files {
            let table: TOMLTable
            do {
                table = try TOMLTable(string: file.text)
            } catch {
                settings.problems.append("\(file.path): not valid TOML; CRI-O would not start with it")
                continue
            }
            guard let image = table["crio"]?.table?["image"]?.table, let value = image["auto_reload_registries"] else { continue }
            guard let flag = value.bool else {
                settings.problems.append("\(file.path): [crio.image] auto_reload_registries is not a boolean")
                continue
            }
            settings.autoReloadRegistries = flag
            settings.autoReloadSetIn = file.path
        }
        return settings
    }

    /// `[crio.image] <key>` of one crio.conf file, when it is a string (nil when unset or not TOML).
    public static func imageString(_ text: String, key: String) -> String? {
        guard let table = try? TOMLTable(string: text) else { return nil }
        return table["crio"]?.table?["image"]?.table?[key]?.string
    }

    /// The host paths CRI-O reads, in its order.
    public static func files(root: HostRoot) -> [String] {
        var paths: [String] = []
        if FileSystem.exists(root.path(mainFile)) && !FileSystem.isDirectory(root.path(mainFile)) { paths.append(mainFile) }
        func walk(_ directory: String, depth: Int) {
            guard depth < 8, let names = FileSystem.list(root.path(directory)) else { return }
            for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                let path = directory + "/" + name
                if FileSystem.isDirectory(root.path(path)) { walk(path, depth: depth + 1) } else { paths.append(path) }
            }
        }
        walk(dropInDirectory, depth: 0)
        return paths
    }

    /// Reads CRI-O's configuration under the root; never blocks on a file (FileSystem.read).
    public static func load(root: HostRoot) -> CRIOSettings {
        var problems: [String] = []
        let texts = files(root: root).compactMap { path -> (path: String, text: String)? in
            switch FileSystem.read(root.path(path), limit: 4 << 20) {
            case .success(let bytes): return (path, String(decoding: bytes, as: UTF8.self))
            case .failure: problems.append("\(root.path(path)): cannot be read"); return nil
            }
        }
        var settings = parse(texts.map { (root.path($0.path), $0.text) })
        settings.problems = problems + settings.problems
        return settings
    }

    /// The version out of `crio --version` ("crio version 1.30.0" or "Version:  1.30.0"):
    /// (major, minor), or nil.
    public static func version(fromOutput output: String) -> (major: Int, minor: Int)? {
        for line in output.split(separator: "\n") where line.lowercased().contains("version") {
            for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }) {
                let parts = word.drop(while: { $0 == "v" }).split(separator: ".")
                if parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1].prefix(while: \.isNumber)) { return (major, minor) }
            }
        }
        return nil
    }
}

/// What the agent does after the CRI-O drop-in changed.
public enum CRIOReloadDecision: Sendable, Equatable {
    /// Send crio.service a reload (SIGHUP), as before.
    case reload(note: String?)
    /// CRI-O reloads registries itself; the agent sends nothing.
    case selfReloads(String)

    /// The watched directory: CRI-O's default, unless `--registries-conf-dir` or
    /// CONTAINER_REGISTRIES_CONF_DIR (neither is a crio.conf key) say otherwise.
    public static let watchedDirectory = "/etc/containers/registries.conf.d"

    /// - Parameters:
    ///   - version: from `crio --version` when it could be run.
    ///   - settingChangedAt / crioStartedAt: µs since the epoch; CRI-O starts its watcher only at
    ///     start (server/server.go), so a setting newer than the running CRI-O is not in force.
    public static func decide(
        settings: CRIOSettings, dropInPath: String, version: (major: Int, minor: Int)?,
        settingChangedAt: UInt64?, crioStartedAt: UInt64?
    ) -> CRIOReloadDecision {
        guard settings.autoReloadRegistries else { return .reload(note: nil) }
        let origin = settings.autoReloadSetIn.map { " in \($0)" } ?? ""
        if let version, version.major < 1 || (version.major == 1 && version.minor < 30) {
            return .reload(note: "auto_reload_registries is set\(origin), but crio \(version.major).\(version.minor) predates it (1.30); reloading")
        }
        let directory = AtomicWriter.split(hostPath: dropInPath).directory
        if directory != watchedDirectory {
            return .reload(note: "auto_reload_registries is set\(origin), but CRI-O watches \(watchedDirectory), not \(directory); reloading")
        }
        if let settingChangedAt, let crioStartedAt, crioStartedAt > 0, settingChangedAt > crioStartedAt {
            return .reload(note: "auto_reload_registries is set\(origin) since crio.service started; it takes effect at CRI-O's next start, so reloading")
        }
        return .selfReloads("crio reloads registries itself (auto_reload_registries\(origin)); no reload sent")
    }
}
