import DesiredState
import Diagnostics

/// A runtime the agent writes configuration for.
public typealias Runtime = AgentSettings.Runtime

/// One file a renderer wants on disk. Renderers produce these and never touch the disk.
public struct RenderedFile: Sendable, Equatable {
    /// The directory the file lives under (a host path, e.g. `/etc/containerd/certs.d`). It and
    /// its existing parents are trusted as they are.
    public var baseDirectory: String
    /// The file's path under ``baseDirectory`` (e.g. `docker.io/hosts.toml`). No component of it
    /// is ever followed through a symlink.
    public var relativePath: String
    public var contents: String
    /// 0644, or 0600 for anything that holds a secret.
    public var mode: UInt32
    public var runtime: Runtime
    /// The contents are a secret (a private key, credentials): never shown in a diff or a report.
    public var secret = false

    public init(baseDirectory: String, relativePath: String, contents: String, mode: UInt32 = 0o644, runtime: Runtime) {
        self.baseDirectory = baseDirectory
        self.relativePath = relativePath
        self.contents = contents
        self.mode = mode
        self.runtime = runtime
    }

    /// The full host path.
    public var path: String { baseDirectory + "/" + relativePath }
}

/// What a renderer produced: files, and what it could not express.
public struct RenderResult: Sendable, Equatable {
    public var files: [RenderedFile] = []
    /// Sources left out for this runtime, with the reason (also among ``warnings``).
    public var skipped: [SkippedSource] = []
    public var warnings: [Diagnostic] = []

    public init() {}
}

public struct SkippedSource: Sendable, Equatable {
    public var runtime: Runtime
    public var source: String
    public var reason: String
    public var location: SourceLocation?
}

/// The first lines of every file the agent writes: marks it as managed and names its sources.
enum ManagedHeader {
    static let marker = "# Managed by mirror-agent."

    static func lines(origins: [SourceLocation], root: HostRoot) -> String {
        var files: [String] = []
        for file in Set(origins.map(\.file)).sorted() {
            let name = TOML.commentSafe(root.hostPath(of: file) ?? file)
            if !files.contains(name) { files.append(name) }
        }
        var text = marker + " Edits are overwritten: change the desired state instead.\n"
        for file in files { text += "# Source: \(file)\n" }
        return text
    }

    /// `# from mirrors.yaml:3, mirrors.yaml:9` above a table: where its values were declared.
    static func origin(_ origins: [SourceLocation], root: HostRoot) -> String {
        var places: [String] = []
        for origin in origins.sorted() {
            let short = origin.file.lastIndex(of: "/").map { String(origin.file[origin.file.index(after: $0)...]) } ?? origin.file
            let place = "\(TOML.commentSafe(short)):\(origin.line)"
            if !places.contains(place) { places.append(place) }
        }
        return places.isEmpty ? "" : "# from " + places.joined(separator: ", ") + "\n"
    }
}
