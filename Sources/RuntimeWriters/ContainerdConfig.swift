import DesiredState
import Diagnostics
import TOMLKit

/// What the agent needs from containerd's `config.toml`.
public struct ContainerdConfig: Sendable, Equatable {
    /// The config schema: 1 (no `version` key, containerd 1.x), 2 (1.6/1.7) or 3 (2.x).
    public var version: Int
    /// The CRI registry `config_path`, as written (possibly a `:`-separated list).
    public var configPath: String?

    /// The hosts directory containerd uses: the first entry of `config_path`.
    public var hostsDirectory: String? {
        guard let configPath, !configPath.isEmpty else { return nil }
        return configPath.split(separator: ":").first.map(String.init)
    }

    /// The CRI plugin table that holds `registry` for each schema version.
    public static func registryPluginPath(version: Int) -> [String] {
        switch version {
        case 3: return ["plugins", "io.containerd.cri.v1.images"]
        case 2: return ["plugins", "io.containerd.grpc.v1.cri"]
        default: return ["plugins", "cri"]
        }
    }

    /// Parses config.toml text.
    public static func parse(_ text: String, file: String) throws(Diagnostic) -> ContainerdConfig {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw .error("invalid TOML: \(error.description)", at: SourceLocation(file: file, line: error.source.begin.line, column: error.source.begin.column))
        } catch {
            throw .error("invalid TOML: \(error)", at: .file(file))
        }
        let version = table["version"]?.int ?? 1
        var node: TOMLTable? = table
        for key in registryPluginPath(version: version) + ["registry"] { node = node?[key]?.table }
        return ContainerdConfig(version: version, configPath: node?["config_path"]?.string)
    }

    /// Reads the config file under `root`; nil when it does not exist.
    public static func read(_ hostPath: String, root: HostRoot) throws(Diagnostic) -> ContainerdConfig? {
        let path = root.path(hostPath)
        switch FileSystem.read(path, limit: 16 << 20) {
        case .failure(.missing): return nil
        case .failure(let error): throw .error("cannot read containerd's config: \(error)", at: .file(path))
        case .success(let bytes): return try parse(String(decoding: bytes, as: UTF8.self), file: path)
        }
    }
}
