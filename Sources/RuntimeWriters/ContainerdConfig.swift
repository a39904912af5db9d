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

/// A containerd version as `containerd --version` prints it ("1.6.20~ds1", "v2.1.9").
public struct ContainerdVersion: Sendable, Equatable, Comparable {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        (self.major, self.minor, self.patch) = (major, minor, patch)
    }

    public init?(_ text: String?) {
        guard let text else { return nil }
        let numbers = text.drop(while: { $0 == "v" }).split(separator: ".").prefix(3).map { Int($0.prefix(while: \.isNumber)) }
        guard let major = numbers.first ?? nil else { return nil }
        self.init(major, numbers.count > 1 ? numbers[1] ?? 0 : 0, numbers.count > 2 ? numbers[2] ?? 0 : 0)
    }

    public static func < (a: Self, b: Self) -> Bool { (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }

    /// From 2.1 the CRI plugin pulls through the transfer service unless
    /// `use_local_image_pull` is set (or a setting the transfer service lacks forces it back):
    /// containerd's internal/cri/server/images/image_pull.go, pullImageWithTransferService.
    public var criPullsThroughTransferService: Bool { self >= ContainerdVersion(2, 1) }

    /// From 2.2 the CRI images plugin defaults `config_path` to this list, and its migration
    /// of a version-2 file turns an empty `config_path` into it (plugins/cri/images/plugin.go).
    public var defaultConfigPath: String? { self >= ContainerdVersion(2, 2) ? "/etc/containerd/certs.d:/etc/docker/certs.d" : nil }
}

/// What `containerd config dump` shows: the configuration containerd will run with, after its
/// imports, its defaults and (2.x) the migration of an older schema. Read with a TOML parser: 2.x
/// writes literal strings ('...'), 1.x basic strings ("...").
public struct ContainerdConfigDump: Sendable, Equatable {
    /// The schema the dump is written in: 2 (containerd 1.6/1.7) or 3 (2.x).
    public var version: Int
    /// The CRI registry `config_path` (`io.containerd.grpc.v1.cri` in schema 2,
    /// `io.containerd.cri.v1.images` in schema 3); nil when absent.
    public var configPath: String?
    public var discardUnpackedLayers: Bool
    /// Schema 3 only: CRI pulls bypass the transfer service.
    public var useLocalImagePull: Bool
    /// Deprecated `registry.mirrors` entries that are still configured.
    public var legacyMirrorHosts: [String]
    /// `plugins."io.containerd.transfer.v1.local".config_path` (schema 3). containerd 2.0-2.2
    /// store it but never read it: transfer pulls take the hosts directory from their client.
    public var transferConfigPath: String?

    public static func parse(_ text: String) throws(Diagnostic) -> ContainerdConfigDump {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw .error("containerd config dump is not valid TOML: \(error.description)", at: SourceLocation(file: "containerd config dump", line: error.source.begin.line, column: error.source.begin.column))
        } catch {
            throw .error("containerd config dump is not valid TOML: \(error)", at: .file("containerd config dump"))
        }
        let version = table["version"]?.int ?? 1
        let plugin = ContainerdConfig.registryPluginPath(version: version)
        func at(_ path: [String]) -> TOMLValueConvertible? { value(table, path) }
        let discard = version >= 3 ? at(plugin + ["discard_unpacked_layers"]) : at(plugin + ["containerd", "discard_unpacked_layers"])
        return ContainerdConfigDump(
            version: version,
            configPath: at(plugin + ["registry", "config_path"])?.string,
            discardUnpackedLayers: discard?.bool ?? false,
            useLocalImagePull: version >= 3 ? at(plugin + ["use_local_image_pull"])?.bool ?? false : false,
            legacyMirrorHosts: at(plugin + ["registry", "mirrors"])?.table?.keys.sorted() ?? [],
            transferConfigPath: at(["plugins", "io.containerd.transfer.v1.local", "config_path"])?.string)
    }

    /// Whether containerd, running with this configuration, reads hosts.toml from `directory`
    /// on CRI pulls: nil if so, else what stands in the way.
    public func problem(hostsDirectory directory: String, containerd version: ContainerdVersion?) -> String? {
        guard let configPath, !configPath.isEmpty else {
            return "containerd config dump shows no CRI registry config_path"
        }
        let entries = configPath.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let transfer = (version?.criPullsThroughTransferService ?? (self.version >= 3)) && !useLocalImagePull
        if transfer {
            if configPath != directory {
                return "containerd config dump shows config_path = \(configPath), not \(directory) (CRI pulls through the transfer service read it as one directory)"
            }
        } else if entries.first != directory {
            return "containerd config dump shows config_path = \(configPath), not \(directory)"
        }
        if discardUnpackedLayers { return "containerd config dump shows discard_unpacked_layers = true" }
        if !legacyMirrorHosts.isEmpty { return "containerd config dump still shows registry.mirrors for \(legacyMirrorHosts.joined(separator: ", "))" }
        return nil
    }
}
