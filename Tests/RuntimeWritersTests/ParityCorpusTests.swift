import DesiredState
import Foundation
import RuntimeWriters
import TOMLKit
import XCTest

/// The differential corpus (Tests/RuntimeWritersTests/Parity/<case>/): inputs as people paste
/// them, with the output k3s (hosts.toml files) or OpenShift's runtime-utils (registries.conf
/// entries) produces for them, written from those projects' code and tests. Each case must mean
/// the same as ours, compared as the runtime reads it (below), or be a documented difference:
/// a `DIFFERENCE` file with the reason, listed in the README's differences.
///
/// A case directory holds `input.yaml`, `expected/` (`<host dir>/hosts.toml` files, `NONE` for
/// no file at all, or `registries.conf`), and optionally `insecure` (agent.yaml
/// insecureRegistries, one per line) and `registries.conf` (the main file already on the host).
final class ParityCorpusTests: XCTestCase {
    static let corpus = repositoryRoot + "/Tests/RuntimeWritersTests/Parity"

    func testCorpus() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus).filter { !$0.hasPrefix(".") }.sorted()
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        var matches: [String] = []
        var differences: [String] = []
        for name in names {
            let directory = Self.corpus + "/" + name
            let difference = try? String(contentsOfFile: directory + "/DIFFERENCE", encoding: .utf8)
            let (ours, theirs) = try meanings(directory)
            if let difference {
                XCTAssertNotEqual(ours, theirs, "\(name): documented as a difference but now matches; remove its DIFFERENCE file")
                XCTAssertTrue(readme.contains("`\(name)`"), "\(name): a documented difference must be listed in the README")
                XCTAssertFalse(difference.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(name): DIFFERENCE needs the reason")
                differences.append(name)
            } else {
                XCTAssertEqual(ours, theirs, "\(name): ours (first) differs from the reference (second)")
                matches.append(name)
            }
        }
        for name in names { print("parity case \(name): \(differences.contains(name) ? "documented difference" : "match")") }
        print("parity corpus: \(names.count) cases, \(matches.count) match, \(differences.count) documented differences")
        XCTAssertGreaterThanOrEqual(names.count, 50)
    }

    /// Our meaning and the reference's, as comparable text.
    func meanings(_ directory: String) throws -> (String, String) {
        let input = try String(contentsOfFile: directory + "/input.yaml", encoding: .utf8)
        var settings = AgentSettings()
        if let insecure = try? String(contentsOfFile: directory + "/insecure", encoding: .utf8) {
            settings.insecureRegistries = insecure.split(separator: "\n").map(String.init)
        }
        let loaded = DesiredStateLoader.load(text: input, file: "/etc/mirror-agent/mirrors.yaml", root: HostRoot("/nonexistent-root"), settings: settings)
        let expected = directory + "/expected"
        if FileManager.default.fileExists(atPath: expected + "/registries.conf") {
            let existing = (try? String(contentsOfFile: directory + "/registries.conf", encoding: .utf8)) ?? ""
            let theirs = Self.crioMeaning(layers: [try String(contentsOfFile: expected + "/registries.conf", encoding: .utf8)])
            guard loaded.isValid else { return ("invalid: \(loaded.diagnostics.errors.map(\.message))", theirs) }
            let renderer = CRIORegistriesRenderer(
                dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf", plainHTTPHosts: Set(settings.insecureRegistries),
                existingTables: RegistriesConfTable.parse(existing, file: "/etc/containers/registries.conf"))
            let dropIn = renderer.render(loaded.model).files.first?.contents ?? ""
            return (Self.crioMeaning(layers: [existing, dropIn]), theirs)
        }
        var theirFiles: [String: String] = [:]
        for case let path as String in FileManager.default.enumerator(atPath: expected)! where path.hasSuffix("/hosts.toml") {
            theirFiles[String(path.dropLast("/hosts.toml".count))] = try String(contentsOfFile: expected + "/" + path, encoding: .utf8)
        }
        let theirs = Self.containerdMeaning(theirFiles)
        guard loaded.isValid else { return ("invalid: \(loaded.diagnostics.errors.map(\.message))", theirs) }
        var ourFiles: [String: String] = [:]
        let renderer = ContainerdHostsRenderer(
            hostsDirectory: "/etc/containerd/certs.d", features: ContainerdFeatures(version: "2.1.0"), plainHTTPHosts: Set(settings.insecureRegistries))
        for file in renderer.render(loaded.model).files {
            ourFiles[String(file.relativePath.dropLast("/hosts.toml".count))] = file.contents
        }
        return (Self.containerdMeaning(ourFiles), theirs)
    }

    // MARK: containerd

    /// What containerd tries for each registry host, in order, with each endpoint's settings.
    /// The server comes last; a host table repeating the server is the same endpoint; a file that
    /// says only what containerd does without one is no file.
    static func containerdMeaning(_ files: [String: String]) -> String {
        var lines: [String] = []
        for (directory, text) in files {
            let host = ContainerdHostsRenderer.host(forDirectory: directory)
            guard let table = try? TOMLTable(string: text) else {
                lines.append("\(host): unparsable")
                continue
            }
            var endpoints: [String] = []
            let hostTables = table["host"]?.table
            for url in hostOrder(text) {
                guard let entry = hostTables?[url]?.table else { continue }
                let override = entry["override_path"]?.bool ?? false
                let caps = entry["capabilities"]?.array.map { $0.compactMap(\.string).sorted() } ?? ["pull", "push", "resolve"]
                endpoints.append("\(normalized(url, override: override)) caps=\(caps.joined(separator: ","))\(tls(entry))")
            }
            let server = table["server"]?.string ?? ""
            let top = "caps=pull,push,resolve" + tls(table)
            endpoints.append(server.isEmpty ? "<the registry itself> " + top : normalized(server, override: false) + " " + top)
            var collapsed: [String] = []
            for endpoint in endpoints where collapsed.last != endpoint { collapsed.append(endpoint) }
            if collapsed == [defaultEndpoint(host) + " caps=pull,push,resolve"] { continue }
            lines.append("\(host): " + collapsed.joined(separator: " | "))
        }
        return lines.sorted().joined(separator: "\n")
    }

    /// The `[host."..."]` tables in the order written (the order containerd tries them).
    static func hostOrder(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("[host.\""), trimmed.hasSuffix("\"]") else { return nil }
            return String(trimmed.dropFirst(7).dropLast(2))
        }
    }

    static func tls(_ table: TOMLTable) -> String {
        var parts: [String] = []
        if let ca = table["ca"] { parts.append("ca=" + (ca.string.map { [$0] } ?? ca.array?.compactMap(\.string) ?? []).joined(separator: ",")) }
        if let client = table["client"]?.array {
            let pairs = client.map { $0.string ?? ($0.array?.compactMap(\.string).joined(separator: "+") ?? "?") }
            parts.append("client=" + pairs.joined(separator: ","))
        }
        if table["skip_verify"]?.bool == true { parts.append("skip_verify") }
        return parts.isEmpty ? "" : " " + parts.joined(separator: " ")
    }

    /// scheme://host plus the path containerd uses as the API root: "", "/" and "/v2" are the
    /// standard root unless override_path.
    static func normalized(_ url: String, override: Bool) -> String {
        guard let range = url.range(of: "://") else { return url }
        let rest = url[range.upperBound...]
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var path = String(rest[slash...])
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        if !override && (path == "/" || path == "/v2") { path = "" }
        return url[..<range.upperBound] + rest[..<slash].lowercased() + path + (override ? " override_path" : "")
    }

    /// What containerd reaches a host at with no hosts.toml (as k3s spells it).
    static func defaultEndpoint(_ host: String) -> String {
        if host == "*" { return "<the registry itself>" }
        let name = host.hasPrefix("[") ? String(host[...host.firstIndex(of: "]")!]) : String(host.split(separator: ":").first ?? "")
        let port = host.hasPrefix("[") ? host.split(separator: "]").dropFirst().first.map { String($0.dropFirst()) } : host.split(separator: ":").dropFirst().first.map(String.init)
        let loopback = name == "localhost" || name == "[::1]" || (name.hasPrefix("127.") && name.split(separator: ".").count == 4 && name.split(separator: ".").allSatisfy { Int($0) != nil })
        let plain = loopback && port != nil && port != "443"
        return (plain ? "http://" : "https://") + (host == "docker.io" ? "registry-1.docker.io" : host)
    }

    // MARK: CRI-O

    /// Per prefix, as containers/image reads the files layered in order (a later table with the
    /// same prefix replaces an earlier one whole): where it is, whether it is insecure or
    /// blocked, and the mirrors tried for digest pulls and for tag pulls.
    static func crioMeaning(layers: [String]) -> String {
        var byPrefix: [String: String] = [:]
        for text in layers where !text.isEmpty {
            guard let table = try? TOMLTable(string: text) else { return "unparsable" }
            for item in table["registry"]?.array ?? TOMLArray() {
                guard let registry = item.table, let prefix = registry["prefix"]?.string ?? registry["location"]?.string else { continue }
                let location = registry["location"]?.string ?? ""
                let byDigestOnly = registry["mirror-by-digest-only"]?.bool ?? false
                var digest: [String] = []
                var tag: [String] = []
                for mirrorItem in registry["mirror"]?.array ?? TOMLArray() {
                    guard let mirror = mirrorItem.table, let mirrorLocation = mirror["location"]?.string else { continue }
                    let entry = mirrorLocation + (mirror["insecure"]?.bool == true ? " (insecure)" : "")
                    let pullFrom = mirror["pull-from-mirror"]?.string ?? "all"
                    if pullFrom != "tag-only" { digest.append(entry) }
                    if pullFrom != "digest-only" && !byDigestOnly { tag.append(entry) }
                }
                byPrefix[prefix] =
                    "\(prefix): location=\(location == prefix ? "=" : location) insecure=\(registry["insecure"]?.bool ?? false) blocked=\(registry["blocked"]?.bool ?? false) digest=[\(digest.joined(separator: ", "))] tag=[\(tag.joined(separator: ", "))]"
            }
        }
        return byPrefix.keys.sorted().map { byPrefix[$0]! }.joined(separator: "\n")
    }
}
