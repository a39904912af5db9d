/// `mirror-agent validate --as mirrors.d/NAME.yaml FILE`: FILE judged as if it were installed
/// under NAME, merged with every desired-state file already in place.
extension DesiredStateLoader {
    public enum InstallName {
        /// The host path a name given to `--as` stands for: `mirrors.yaml`, `mirrors.d/NAME.yaml`,
        /// a bare `NAME.yaml` (a drop-in), or either as an absolute path under /etc/mirror-agent.
        /// Nil when the agent would never read a file of that name.
        public static func hostPath(_ name: String) -> String? {
            var name = name
            for prefix in ["/etc/mirror-agent/", "./"] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
            if name == "mirrors.yaml" { return mainFile }
            if name.hasPrefix("mirrors.d/") { name.removeFirst("mirrors.d/".count) }
            guard !name.isEmpty, !name.contains("/"), isDesiredStateName(name) else { return nil }
            return dropInDirectory + "/" + name
        }
    }

    /// The files to load, in the agent's order, when `candidate` (a path on this machine) takes
    /// the place of `target` (a host path, see ``InstallName``) among `installed` (host paths as
    /// ``configuredFiles(root:)`` lists them; an installed file of that name is replaced).
    /// Returns host paths mapped through `root`, with the candidate's own path in its place.
    public static func files(installing candidate: String, as target: String, among installed: [String], root: HostRoot) -> [String] {
        var entries = installed.filter { $0 != target }.map { (host: $0, path: root.path($0)) }
        entries.append((host: target, path: candidate))
        func key(_ host: String) -> (Int, [UInt8]) {
            host == mainFile ? (0, []) : (1, Array(host.split(separator: "/").last.map(String.init)?.utf8 ?? "".utf8))
        }
        entries.sort { a, b in
            let (ka, kb) = (key(a.host), key(b.host))
            return ka.0 != kb.0 ? ka.0 < kb.0 : ka.1.lexicographicallyPrecedes(kb.1)
        }
        return entries.map(\.path)
    }
}
