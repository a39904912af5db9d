import DesiredState
import Diagnostics

/// Looks at the hosts directory as it is, for directories that change what the rendered files
/// mean: containerd takes the first directory that exists for a host (`host_port_`, then
/// `host:port`, then `_default`), with or without a hosts.toml in it.
struct ContainerdHostsInspector {
    var root: HostRoot
    var hostsDirectory: String

    func inspect(_ rendered: [RenderedFile]) -> [Diagnostic] {
        let existing = Set(FileSystem.list(root.path(hostsDirectory)) ?? []).filter { FileSystem.isDirectory(root.path(hostsDirectory + "/" + $0)) }
        let ours = Set(rendered.map { String($0.relativePath.split(separator: "/")[0]) })
        var warnings: [Diagnostic] = []
        for directory in ours.sorted() where directory.hasSuffix("_") && directory != "_default" {
            // host_port_ is looked up before host:port: ours hides the other spelling.
            let trimmed = directory.dropLast()
            guard let underscore = trimmed.lastIndex(of: "_") else { continue }
            let colonSpelling = trimmed[..<underscore] + ":" + trimmed[trimmed.index(after: underscore)...]
            if existing.contains(String(colonSpelling)) {
                warnings.append(
                    .warning(
                        "\(root.path(hostsDirectory))/\(colonSpelling) is shadowed by \(directory), which mirror-agent writes and containerd looks up first; its settings no longer apply",
                        at: nil))
            }
        }
        if ours.contains("_default") {
            let others = existing.subtracting(ours).subtracting(["_default", "_backup"]).filter { !$0.hasPrefix(".") }.sorted()
            if !others.isEmpty {
                warnings.append(
                    .warning(
                        "the mirrors for every registry (_default) do not apply to \(others.joined(separator: ", ")): containerd uses an existing directory for its host instead, even one without a hosts.toml",
                        at: nil))
            }
        }
        return warnings
    }
}
