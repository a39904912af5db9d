import DesiredState
import Diagnostics

/// From the normalized model to files in force: picks the runtimes, renders for each, looks at
/// what is already on the host, and hands the files to ``ManagedFiles``.
public struct Reconciler: Sendable {
    public var root: HostRoot
    public var settings: AgentSettings
    public var containerdFeatures: ContainerdFeatures

    public init(root: HostRoot, settings: AgentSettings, containerdFeatures: ContainerdFeatures = ContainerdFeatures()) {
        self.root = root
        self.settings = settings
        self.containerdFeatures = containerdFeatures
    }

    /// Everything rendered for one desired state, before anything is written.
    public struct Plan: Sendable, Equatable {
        public var runtimes: [Runtime] = []
        public var files: [RenderedFile] = []
        public var skipped: [SkippedSource] = []
        public var warnings: [Diagnostic] = []
        /// containerd's hosts directory, when containerd is in play.
        public var containerdHostsDirectory: String?
        /// The TLS files the certs.d copies come from (host paths): the daemon watches them.
        public var tlsSourceFiles: [String] = []

        public init() {}
    }

    public static let defaultHostsDirectory = "/etc/containerd/certs.d"

    /// The hosts directory: containerd's own `config_path`, else the setting, else the default.
    public func containerdHostsDirectory(warnings: inout [Diagnostic]) -> String {
        do {
            if let config = try ContainerdConfig.read(settings.containerd.configFile, root: root), let directory = config.hostsDirectory {
                if let list = config.configPath, list.contains(":") {
                    warnings.append(
                        .warning(
                            "containerd's config_path is a list (\(list)); writing to its first entry, \(directory). containerd 2.1+'s transfer service reads the whole string as one directory",
                            at: .file(root.path(settings.containerd.configFile))))
                }
                return directory
            }
        } catch {
            warnings.append(Diagnostic(.warning, at: error.location, error.message + "; using \(settings.containerd.hostsDir ?? Self.defaultHostsDirectory)"))
        }
        return settings.containerd.hostsDir ?? Self.defaultHostsDirectory
    }

    /// Renders for every selected runtime. `containerdHostsDirectory`, when given, is where the
    /// prerequisites check found (or will put) containerd's `config_path`.
    public func plan(_ model: MirrorModel, containerdHostsDirectory known: String? = nil) -> Plan {
        var plan = Plan()
        plan.runtimes = settings.selectedRuntimes(root: root)
        if plan.runtimes.isEmpty {
            plan.warnings.append(
                .warning(
                    "no container runtime found under \(root) (looked for \(settings.containerd.configFile), /etc/containerd and /etc/crio); nothing is written. Set \"runtimes\" in agent.yaml to choose them",
                    at: nil))
        }
        for runtime in plan.runtimes {
            var result: RenderResult
            switch runtime {
            case .containerd:
                let directory = known ?? containerdHostsDirectory(warnings: &plan.warnings)
                plan.containerdHostsDirectory = directory
                let renderer = ContainerdHostsRenderer(
                    hostsDirectory: directory, features: containerdFeatures, dialTimeout: settings.containerd.dialTimeout,
                    plainHTTPHosts: Set(settings.insecureRegistries), root: root)
                result = renderer.render(model)
                plan.warnings += ContainerdHostsInspector(root: root, hostsDirectory: directory).inspect(result.files)
            case .crio:
                let inspector = CRIORegistriesInspector(root: root, settings: settings.crio)
                result = CRIORegistriesRenderer(
                    dropInPath: settings.crio.dropIn, plainHTTPHosts: Set(settings.insecureRegistries), root: root,
                    existingTables: inspector.existingTables(dropInPath: settings.crio.dropIn)
                ).render(model)
                plan.warnings += inspector.inspect(model: model, rendered: result.files)
                let root = self.root
                let certs = CRIOCertsRenderer(
                    root: root, read: { FileSystem.read(root.path($0), limit: 16 << 20) },
                    previous: { path in
                        guard case .success(let bytes) = FileSystem.read(root.path(path), limit: 16 << 20, followSymlinks: false) else { return nil }
                        let text = String(decoding: bytes, as: UTF8.self)
                        return text.hasPrefix(ManagedHeader.marker) ? text : nil
                    }
                ).render(model)
                let auth = CRIOAuthRenderer(
                    root: root, crioInstalled: FileSystem.isDirectory(root.path("/etc/crio")),
                    globalAuthFile: CRIOAuthRenderer.globalAuthFile(root: root),
                    presentDefaultAuthFiles: CRIOAuthRenderer.defaultAuthFiles.filter { FileSystem.exists(root.path($0)) }
                ).render(model)
                result.files += certs.files + auth.files
                var warnings: [Diagnostic] = []
                for (_, tls) in CRIOCertsRenderer.hosts(model, warnings: &warnings) {
                    plan.tlsSourceFiles += tls.caFiles + [tls.client?.certificate, tls.client?.key].compactMap { $0 }
                }
                result.warnings += certs.warnings + auth.warnings
            }
            plan.files += result.files
            plan.skipped += result.skipped
            plan.warnings += result.warnings
        }
        return plan
    }

    /// Writes the plan (or, with `dryRun`, says what it would write).
    public func apply(_ plan: Plan, dryRun: Bool) -> ManagedFiles.Outcome {
        ManagedFiles(root: root, stateDirectory: settings.stateDir, adopt: settings.adopt)
            .apply(plan.files, runtimes: Set(plan.runtimes), dryRun: dryRun)
    }
}
