import DesiredState
import Diagnostics
import TOMLKit

/// Reports what the CRI-O drop-in changes in the configuration already on the host: a drop-in's
/// `[[registry]]` replaces an earlier table with the same prefix whole, and a drop-in sorting
/// after ours replaces ours.
struct CRIORegistriesInspector {
    var root: HostRoot
    var settings: AgentSettings.CRIO

    func inspect(model: MirrorModel, rendered: [RenderedFile]) -> [Diagnostic] {
        guard let file = rendered.first else { return [] }
        // The prefixes the drop-in defines are the sources it renders.
        let ourPrefixes = Set(model.registries.filter { $0.source != .everyRegistry }.map(\.source.description))
        var warnings: [Diagnostic] = []
        let directory = file.baseDirectory
        let ourName = file.relativePath
        var earlier = [settings.registriesConf]
        let names = (FileSystem.list(root.path(directory)) ?? []).filter { $0.hasSuffix(".conf") && $0 != ourName }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for name in names {
            if Array(name.utf8).lexicographicallyPrecedes(Array(ourName.utf8)) {
                earlier.append(directory + "/" + name)
            } else {
                // Only a table with one of our prefixes matters: other prefixes are matched by
                // length, not file order, and a file of [aliases] alone (containers-common's
                // shortnames.conf) changes nothing of ours.
                let later = prefixes(inFile: directory + "/" + name)
                let clash = ourPrefixes.intersection(later.map(\.prefix)).sorted()
                guard !clash.isEmpty else { continue }
                warnings.append(
                    .warning(
                        "\(root.path(directory))/\(name) sorts after \(ourName) and replaces its tables for \(clash.joined(separator: ", ")); rename it or choose a later crio.dropIn name",
                        at: nil))
            }
        }
        for path in earlier {
            for table in prefixes(inFile: path) where ourPrefixes.contains(table.prefix) && !table.summary.isEmpty {
                warnings.append(
                    .warning(
                        "the drop-in replaces [[registry]] prefix \"\(table.prefix)\" from \(root.path(path)) whole, dropping: \(table.summary.joined(separator: "; "))",
                        at: nil))
            }
        }
        return warnings
    }

    struct Table {
        var prefix: String
        var summary: [String]
        var parsed: RegistriesConfTable
    }

    /// The `[[registry]]` tables the drop-in is layered over: the main registries.conf and the
    /// drop-ins that sort before ours.
    func existingTables(dropInPath: String) -> [RegistriesConfTable] {
        let (directory, ourName) = AtomicWriter.split(hostPath: dropInPath)
        var paths = [settings.registriesConf]
        let names = (FileSystem.list(root.path(directory)) ?? []).filter { $0.hasSuffix(".conf") && $0 != ourName }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for name in names where Array(name.utf8).lexicographicallyPrecedes(Array(ourName.utf8)) { paths.append(directory + "/" + name) }
        return paths.flatMap { prefixes(inFile: $0).map(\.parsed) }
    }

    func prefixes(inFile hostPath: String) -> [Table] {
        guard case .success(let bytes) = FileSystem.read(root.path(hostPath), limit: 16 << 20) else { return [] }
        return RegistriesConfTable.parse(String(decoding: bytes, as: UTF8.self), file: root.path(hostPath)).map { parsed in
            var summary: [String] = []
            if let location = parsed.location, location != parsed.prefix { summary.append("location \(location)") }
            // The renderer keeps blocked and insecure of a table that does not point elsewhere.
            let kept = parsed.location == nil || parsed.location == parsed.prefix
            if parsed.blocked && !kept { summary.append("blocked = true") }
            if parsed.insecure && !kept { summary.append("insecure = true") }
            if !parsed.mirrors.isEmpty { summary.append("mirrors \(parsed.mirrors.joined(separator: ", "))") }
            return Table(prefix: parsed.prefix, summary: summary, parsed: parsed)
        }
    }
}

/// One `[[registry]]` table of a registries.conf file already on the host.
public struct RegistriesConfTable: Sendable, Equatable {
    public var file: String
    public var prefix: String
    public var location: String?
    public var insecure: Bool
    public var blocked: Bool
    /// Mirror locations.
    public var mirrors: [String]
    /// No key beyond prefix, location, insecure, blocked and mirror.
    public var onlyKnownKeys: Bool

    public init(file: String, prefix: String, location: String? = nil, insecure: Bool = false, blocked: Bool = false, mirrors: [String] = [], onlyKnownKeys: Bool = true) {
        self.file = file
        self.prefix = prefix
        self.location = location
        self.insecure = insecure
        self.blocked = blocked
        self.mirrors = mirrors
        self.onlyKnownKeys = onlyKnownKeys
    }
}

extension RegistriesConfTable {
    static let knownRegistryKeys: Set<String> = ["prefix", "location", "insecure", "blocked", "mirror"]

    /// The `[[registry]]` tables of a registries.conf text (none when it does not parse).
    public static func parse(_ text: String, file: String) -> [RegistriesConfTable] {
        guard let table = try? TOMLTable(string: text), let registries = table["registry"]?.array else { return [] }
        var result: [RegistriesConfTable] = []
        for item in registries {
            guard let registry = item.table else { continue }
            // A table without a prefix is keyed by its location.
            guard let prefix = registry["prefix"]?.string ?? registry["location"]?.string else { continue }
            let mirrors = (registry["mirror"]?.array ?? TOMLArray()).compactMap { $0.table?["location"]?.string }
            result.append(
                RegistriesConfTable(
                    file: file, prefix: prefix, location: registry["location"]?.string, insecure: registry["insecure"]?.bool == true,
                    blocked: registry["blocked"]?.bool == true, mirrors: mirrors,
                    onlyKnownKeys: registry.keys.allSatisfy(knownRegistryKeys.contains)))
        }
        return result
    }
}
