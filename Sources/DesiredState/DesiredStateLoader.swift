import Diagnostics
import MarkedYAML

/// Finds, reads, decodes and merges desired-state files into one ``MirrorModel``.
public enum DesiredStateLoader {
    public static let mainFile = "/etc/mirror-agent/mirrors.yaml"
    public static let dropInDirectory = "/etc/mirror-agent/mirrors.d"

    /// What loading produced: the model (empty when there are errors), every problem, and the
    /// files read.
    public struct Result: Sendable {
        public var model: MirrorModel
        public var diagnostics: DiagnosticList
        public var files: [String]
        public var isValid: Bool { !diagnostics.hasErrors }
    }

    /// The configured desired-state files as host paths: `mirrors.yaml`, then `mirrors.d/*.yaml`
    /// (and `.yml`) in byte order. Hidden files (which also skips a ConfigMap mount's `..data`),
    /// editor backups (`~`) and dpkg leftovers (`.dpkg-old`, `.dpkg-dist`, ...) are ignored.
    public static func configuredFiles(root: HostRoot) -> [String] {
        var files: [String] = []
        if FileSystem.exists(root.path(mainFile)) { files.append(mainFile) }
        let names = FileSystem.list(root.path(dropInDirectory)) ?? []
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) where isDesiredStateName(name) {
            files.append(dropInDirectory + "/" + name)
        }
        return files
    }

    /// Whether the agent reads through `name` in a desired-state directory: a desired-state file,
    /// or a ConfigMap or Secret volume's `..data` link (`name.yaml -> ..data/name.yaml`; the
    /// kubelet publishes a new version by renaming a new link over it).
    public static func readsThrough(_ name: String) -> Bool {
        name == "..data" || isDesiredStateName(name)
    }

    public static func isDesiredStateName(_ name: String) -> Bool {
        if name.hasPrefix(".") || name.hasSuffix("~") { return false }
        if name.contains(".dpkg-") || name.contains(".ucf-") { return false }
        return name.hasSuffix(".yaml") || name.hasSuffix(".yml")
    }

    /// Loads the configured files under `root`.
    public static func load(root: HostRoot, settings: AgentSettings, legacy: [LegacyContainerdMirror] = [], limits: YAMLLimits = .standard) -> Result {
        load(paths: configuredFiles(root: root).map(root.path), root: root, settings: settings, legacy: legacy, limits: limits)
    }

    /// Loads the given files (paths on this machine). TLS files are looked up under `root`.
    public static func load(
        paths: [String], root: HostRoot, settings: AgentSettings, legacy: [LegacyContainerdMirror] = [], limits: YAMLLimits = .standard
    ) -> Result {
        var decoded = DecodedDocuments()
        decoded.declarations = declarations(from: legacy, into: &decoded.diagnostics)
        for path in paths {
            switch FileSystem.read(path, limit: limits.maxBytes, trustCheck: true, root: root) {
            case .failure(let error):
                decoded.diagnostics.error(describe(error), at: .file(path))
            case .success(let bytes):
                decode(bytes, file: path, settings: settings, limits: limits, into: &decoded)
            }
        }
        return finish(decoded, files: paths, root: root)
    }

    /// Decodes text that did not come from a file on disk (tests, fuzzing).
    public static func load(text: String, file: String, root: HostRoot = .system, settings: AgentSettings = AgentSettings(), limits: YAMLLimits = .standard) -> Result {
        var decoded = DecodedDocuments()
        decode(Array(text.utf8), file: file, settings: settings, limits: limits, into: &decoded)
        return finish(decoded, files: [file], root: root)
    }

    static func decode(_ bytes: [UInt8], file: String, settings: AgentSettings, limits: YAMLLimits, into decoded: inout DecodedDocuments) {
        decoded.insecureRegistries = Set(settings.insecureRegistries)
        do {
            var usage = YAMLUsage()
            let documents = try YAMLParser.parse(bytes, mapping: LocationMapping(file: file), limits: limits, usage: &usage)
            let text = String(decoding: bytes, as: UTF8.self)
            let context = DecodingContext(
                insecureRegistries: Set(settings.insecureRegistries),
                lines: text.split(separator: "\n", omittingEmptySubsequences: false), limits: limits,
                budget: EmbeddedBudget(limits: limits, used: usage))
            for document in documents {
                Dialect.decode(document, context: context, into: &decoded)
            }
        } catch {
            decoded.diagnostics.append(error)
        }
    }

    static func finish(_ decoded: DecodedDocuments, files: [String], root: HostRoot) -> Result {
        var diagnostics = decoded.diagnostics
        let registries = Merger.merge(decoded.declarations, insecure: decoded.insecureRegistries, into: &diagnostics)
        // A missing TLS file is a warning (it may be provisioned later), once per file.
        var users: [String: (location: SourceLocation?, names: [String])] = [:]
        var order: [String] = []
        func note(_ tls: TLSSettings, _ name: String, _ location: SourceLocation?) {
            for path in tls.caFiles + [tls.clientCertificate, tls.clientKey].compactMap({ $0 }) where path.hasPrefix("/") && !FileSystem.exists(root.path(path)) {
                if users[path] == nil { order.append(path) }
                users[path, default: (location, [])].names.append(name)
            }
        }
        for registry in registries {
            for mirror in registry.mirrors { note(mirror.tls, mirror.displayURL, mirror.origins.first) }
            note(registry.sourceTLS, registry.source.description, registry.origins.first)
        }
        for path in order {
            let (location, names) = users[path]!
            var unique: [String] = []
            for name in names where !unique.contains(name) { unique.append(name) }
            diagnostics.warning("TLS file \(path) does not exist (used by \(unique.joined(separator: ", ")))", at: location)
        }
        let credentials = mergeCredentials(decoded, root: root, into: &diagnostics)
        let model = diagnostics.hasErrors ? MirrorModel() : MirrorModel(registries: registries, credentials: credentials)
        return Result(model: model, diagnostics: diagnostics, files: files)
    }

    /// Every credential of the input (k3s `auth`, MirrorSet credentials with their files read),
    /// one per host a runtime contacts: the same values declared twice are one, different values
    /// for one host are an error naming both places (never a value).
    static func mergeCredentials(_ decoded: DecodedDocuments, root: HostRoot, into diagnostics: inout DiagnosticList) -> [HostCredentials] {
        var all = decoded.credentials
        for spec in decoded.credentialSpecs {
            if let resolved = spec.resolve(root: root, into: &diagnostics) { all.append(resolved) }
        }
        var merged: [HostCredentials] = []
        for credential in all {
            if credential.host == "*" {
                diagnostics.warning(
                    "credentials for \"*\" are not written: containerd's registry.configs has no entry for every registry (its value is not shown)",
                    at: credential.location)
                continue
            }
            let key = References.defaultHost(credential.host)
            if let index = merged.firstIndex(where: { References.defaultHost($0.host) == key }) {
                if merged[index].sameValues(as: credential) {
                    merged[index].files += credential.files.filter { !merged[index].files.contains($0) }
                } else {
                    diagnostics.error(
                        "credentials for \(key) differ from those declared at \(merged[index].location) (values are not shown); one host has one set of credentials",
                        at: credential.location)
                }
                continue
            }
            merged.append(credential)
        }
        return merged.sorted { $0.host < $1.host }
    }

    public static func describe(_ error: FileSystem.ReadError) -> String {
        switch error {
        case .missing: return "file does not exist"
        case .notRegularFile: return "not a regular file (a FIFO, device, socket or directory is never read)"
        case .tooLarge(let size): return "file is \(size) bytes, larger than the \(YAMLLimits.standard.maxBytes)-byte limit; refusing to read it"
        case .unsafe(let why): return "refusing to trust this file: \(why)"
        case .system(let message): return "cannot read: \(message)"
        }
    }
}
