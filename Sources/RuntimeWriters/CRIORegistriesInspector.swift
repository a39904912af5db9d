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
                let later = prefixes(inFile: directory + "/" + name)
                let clash = ourPrefixes.intersection(later.map(\.prefix)).sorted()
                warnings.append(
                    .warning(
                        "\(root.path(directory))/\(name) sorts after \(ourName)\(clash.isEmpty ? "" : " and replaces its tables for \(clash.joined(separator: ", "))"); rename it or choose a later crio.dropIn name",
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
    }

    func prefixes(inFile hostPath: String) -> [Table] {
        guard case .success(let bytes) = FileSystem.read(root.path(hostPath), limit: 16 << 20),
            let table = try? TOMLTable(string: String(decoding: bytes, as: UTF8.self))
        else { return [] }
        return tables(table)
    }

    private func tables(_ table: TOMLTable) -> [Table] {
        guard let registries = table["registry"]?.array else { return [] }
        var result: [Table] = []
        for item in registries {
            guard let registry = item.table else { continue }
            // A table without a prefix is keyed by its location.
            guard let prefix = registry["prefix"]?.string ?? registry["location"]?.string else { continue }
            var summary: [String] = []
            if let location = registry["location"]?.string, location != prefix { summary.append("location \(location)") }
            if registry["blocked"]?.bool == true { summary.append("blocked = true") }
            if registry["insecure"]?.bool == true { summary.append("insecure = true") }
            let mirrors = (registry["mirror"]?.array ?? TOMLArray()).compactMap { $0.table?["location"]?.string }
            if !mirrors.isEmpty { summary.append("mirrors \(mirrors.joined(separator: ", "))") }
            result.append(Table(prefix: prefix, summary: summary))
        }
        return result
    }
}
