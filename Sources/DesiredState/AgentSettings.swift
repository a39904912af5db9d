import Diagnostics
import MarkedYAML

/// The agent's own settings, from `/etc/mirror-agent/agent.yaml` (optional; every key has a
/// default, documented in the README and in the shipped file). Unknown keys are errors, as in
/// desired state.
public struct AgentSettings: Sendable, Equatable {
    public enum Runtime: String, Sendable, Hashable, CaseIterable, Codable {
        case containerd, crio
    }

    public enum RuntimeSelection: Sendable, Equatable {
        /// Detect the runtimes from their configuration under the root.
        case auto
        case explicit([Runtime])
    }

    public struct Containerd: Sendable, Equatable {
        /// containerd's main configuration file.
        public var configFile = "/etc/containerd/config.toml"
        /// Where hosts.toml directories go; nil means containerd's own `config_path`, or
        /// `/etc/containerd/certs.d` when it has none.
        public var hostsDir: String?
        /// `dial_timeout` for every mirror (e.g. "200ms"), so containerd falls back fast from a
        /// mirror that is down; written only where containerd supports it (2.0.7+, 2.1+).
        public var dialTimeout: String?
        /// Patch config.toml when a prerequisite is missing (then restart containerd).
        public var fixConfig = true
    }

    /// Restarting and reloading runtimes.
    public struct Restart: Sendable, Equatable {
        public enum Policy: String, Sendable, Equatable { case auto, never }
        /// `never`: report "restart pending" instead of restarting or reloading.
        public var policy: Policy = .auto
        /// How long a restart or reload job may take.
        public var jobTimeout: Duration = .seconds(90)
    }

    /// The daemon (`mirror-agent run`).
    public struct Daemon: Sendable, Equatable {
        /// Quiet time after a change before reconciling: a tool writing ten files gives one pass.
        public var debounce: Duration = .milliseconds(200)
        /// Quiet time after a change that needs a runtime restart or reload before doing it, so a
        /// burst of changes gives one restart.
        public var restartDelay: Duration = .seconds(2)
        /// At most one containerd restart per this interval; later ones wait.
        public var minRestartInterval: Duration = .seconds(60)
        /// Send WATCHDOG=1 when systemd asks for it (WatchdogSec=).
        public var watchdog = true
    }

    /// Where the daemon reports.
    public struct Status: Sendable, Equatable {
        /// The JSON status file, replaced atomically after every pass.
        public var file = "/run/mirror-agent/status.json"
    }

    /// Mirror health probes (`GET <mirror>/v2/`).
    public struct Probe: Sendable, Equatable {
        public enum OnUnhealthy: String, Sendable, Equatable { case keep, demote }
        public var enabled = true
        /// A round every interval, plus up to `jitter` so nodes do not probe in step.
        public var interval: Duration = .seconds(30)
        public var jitter: Duration = .seconds(3)
        public var connectTimeout: Duration = .seconds(2)
        public var timeout: Duration = .seconds(5)
        /// Probes in flight at once.
        public var concurrency = 256
        /// Down after this many failed probes in a row (a failing endpoint is rechecked 1 s after
        /// each failure), up again after this many good rounds.
        public var failureThreshold = 3
        public var successThreshold = 2
        /// `keep`: report only. `demote`: leave a down mirror out of the runtime files until it
        /// is up again (never the last mirror of a NeverContactSource registry).
        public var onUnhealthy: OnUnhealthy = .keep
    }

    /// Prometheus metrics as a node_exporter textfile.
    public struct Metrics: Sendable, Equatable {
        /// Written there (as mirror_agent.prom) when the directory exists.
        public var directory = "/var/lib/prometheus/node-exporter"
    }

    /// Settings that exist only for tests of failure handling. Never set them on a real host.
    public struct Testing: Sendable, Equatable {
        /// The config.toml fix also points containerd's `root` at an impossible place, so that
        /// containerd fails to start and the rollback runs.
        public var breakContainerdStart = false
    }

    public struct CRIO: Sendable, Equatable {
        /// The main containers-registries.conf, read to report what the drop-in replaces.
        public var registriesConf = "/etc/containers/registries.conf"
        /// The drop-in the agent owns. Drop-ins are read in lexical order and a later table for
        /// the same prefix replaces an earlier one whole, so the name must sort last.
        public var dropIn = "/etc/containers/registries.conf.d/99-mirror-agent.conf"
    }

    public var runtimes: RuntimeSelection = .auto
    /// `host[:port]` mirrors reached over plain HTTP when written without a scheme (the OpenShift
    /// dialects have no scheme), as in docker's daemon.json.
    public var insecureRegistries: [String] = []
    /// Take over a hosts.toml the agent did not write (keeping the original as a backup).
    public var adopt = false
    public var containerd = Containerd()
    public var crio = CRIO()
    public var restart = Restart()
    public var daemon = Daemon()
    public var status = Status()
    public var probe = Probe()
    public var metrics = Metrics()
    public var testing = Testing()
    /// Where the agent keeps its ownership manifest and backups.
    public var stateDir = "/var/lib/mirror-agent"

    public init() {}

    public static let path = "/etc/mirror-agent/agent.yaml"
    static let topKeys = ["runtimes", "insecureRegistries", "adopt", "containerd", "crio", "stateDir", "restart", "daemon", "status", "probe", "metrics", "testing"]

    /// Reads the settings file under `root`; a missing file means every default.
    public static func load(root: HostRoot) -> (AgentSettings, DiagnosticList) {
        let file = root.path(path)
        switch FileSystem.read(file, limit: YAMLLimits.standard.maxBytes, trustCheck: true, root: root) {
        case .failure(.missing):
            return (AgentSettings(), DiagnosticList())
        case .failure(let error):
            return (AgentSettings(), DiagnosticList([.error(DesiredStateLoader.describe(error), at: .file(file))]))
        case .success(let bytes):
            return parse(bytes, file: file)
        }
    }

    public static func parse(_ bytes: [UInt8], file: String) -> (AgentSettings, DiagnosticList) {
        var settings = AgentSettings()
        var diagnostics = DiagnosticList()
        do {
            let documents = try YAMLParser.parse(bytes, mapping: LocationMapping(file: file))
            let roots = documents.compactMap(\.root).filter { !$0.isNull }
            guard let root = roots.first else { return (settings, diagnostics) }
            if roots.count > 1 {
                diagnostics.error("agent.yaml must hold one document", at: roots[1].location)
            }
            let f = try FieldReader(root, "agent.yaml")
            f.reportUnknown(topKeys, into: &diagnostics)
            if let node = f.value("runtimes") {
                if case .scalar = node.content {
                    let text = try node.string("runtimes")
                    guard text == "auto" else {
                        throw Diagnostic.error("runtimes must be \"auto\" or a list of containerd, crio; found \(Quote.value(text))", at: node.location)
                    }
                } else {
                    var list: [Runtime] = []
                    for item in try node.list("runtimes") {
                        let name = try item.string("each runtime")
                        guard let runtime = Runtime(rawValue: name) else {
                            var message = "unknown runtime \(Quote.value(name)) (known: containerd, crio)"
                            if let s = closestMatch(to: name, in: Runtime.allCases.map(\.rawValue)) { message = "unknown runtime \(Quote.value(name)); did you mean \"\(s)\"?" }
                            throw Diagnostic.error(message, at: item.location)
                        }
                        if !list.contains(runtime) { list.append(runtime) }
                    }
                    settings.runtimes = .explicit(list)
                }
            }
            for item in try f.value("insecureRegistries")?.list("insecureRegistries") ?? [] {
                settings.insecureRegistries.append(try References.host(try item.string("each insecure registry"), "insecure registry", at: item.location))
            }
            settings.adopt = try f.bool("adopt") ?? false
            if let node = f.value("containerd") {
                let c = try FieldReader(node, "containerd")
                c.reportUnknown(["configFile", "hostsDir", "dialTimeout", "fixConfig"], into: &diagnostics)
                if let v = try c.bool("fixConfig") { settings.containerd.fixConfig = v }
                if let v = try absolutePath(c, "configFile") { settings.containerd.configFile = v }
                settings.containerd.hostsDir = try absolutePath(c, "hostsDir")
                if let node = c.value("dialTimeout") {
                    _ = try duration(node, "containerd.dialTimeout", max: .seconds(300))
                    settings.containerd.dialTimeout = try node.string("containerd.dialTimeout")
                }
            }
            if let node = f.value("crio") {
                let c = try FieldReader(node, "crio")
                c.reportUnknown(["registriesConf", "dropIn"], into: &diagnostics)
                if let v = try absolutePath(c, "registriesConf") { settings.crio.registriesConf = v }
                if let v = try absolutePath(c, "dropIn") {
                    guard v.hasSuffix(".conf") else {
                        throw Diagnostic.error("crio.dropIn must end in \".conf\": containers/image reads no other drop-ins", at: c.value("dropIn")!.location)
                    }
                    settings.crio.dropIn = v
                }
            }
            if let v = try absolutePath(f, "stateDir") { settings.stateDir = v }
            if let node = f.value("restart") {
                if case .scalar = node.content {
                    settings.restart.policy = try restartPolicy(node)
                } else {
                    let r = try FieldReader(node, "restart")
                    r.reportUnknown(["policy", "jobTimeout"], into: &diagnostics)
                    if let p = r.value("policy") { settings.restart.policy = try restartPolicy(p) }
                    if let t = r.value("jobTimeout") { settings.restart.jobTimeout = try duration(t, "restart.jobTimeout", max: .seconds(3600)) }
                }
            }
            if let node = f.value("daemon") {
                let d = try FieldReader(node, "daemon")
                d.reportUnknown(["debounce", "restartDelay", "minRestartInterval", "watchdog"], into: &diagnostics)
                if let t = d.value("debounce") { settings.daemon.debounce = try duration(t, "daemon.debounce", max: .seconds(3600)) }
                if let t = d.value("restartDelay") { settings.daemon.restartDelay = try duration(t, "daemon.restartDelay", max: .seconds(3600)) }
                if let t = d.value("minRestartInterval") { settings.daemon.minRestartInterval = try duration(t, "daemon.minRestartInterval") }
                if let w = try d.bool("watchdog") { settings.daemon.watchdog = w }
            }
            if let node = f.value("status") {
                let st = try FieldReader(node, "status")
                st.reportUnknown(["file"], into: &diagnostics)
                if let v = try absolutePath(st, "file") { settings.status.file = v }
            }
            if let node = f.value("probe") {
                let p = try FieldReader(node, "probe")
                p.reportUnknown(
                    ["enabled", "interval", "jitter", "connectTimeout", "timeout", "concurrency", "failureThreshold", "successThreshold", "onUnhealthy"],
                    into: &diagnostics)
                if let v = try p.bool("enabled") { settings.probe.enabled = v }
                if let t = p.value("interval") { settings.probe.interval = try duration(t, "probe.interval") }
                if let t = p.value("jitter") { settings.probe.jitter = try duration(t, "probe.jitter", allowZero: true) }
                if let t = p.value("connectTimeout") { settings.probe.connectTimeout = try duration(t, "probe.connectTimeout", max: .seconds(300)) }
                if let t = p.value("timeout") { settings.probe.timeout = try duration(t, "probe.timeout", max: .seconds(300)) }
                if let n = p.value("concurrency") { settings.probe.concurrency = try count(n, "probe.concurrency", 1...4096) }
                if let n = p.value("failureThreshold") { settings.probe.failureThreshold = try count(n, "probe.failureThreshold", 1...100) }
                if let n = p.value("successThreshold") { settings.probe.successThreshold = try count(n, "probe.successThreshold", 1...100) }
                if let node = p.value("onUnhealthy") {
                    let text = try node.string("probe.onUnhealthy")
                    guard let value = Probe.OnUnhealthy(rawValue: text) else {
                        throw Diagnostic.error("probe.onUnhealthy \(Quote.value(text)) is not keep or demote", at: node.location)
                    }
                    settings.probe.onUnhealthy = value
                }
            }
            if let node = f.value("metrics") {
                let m = try FieldReader(node, "metrics")
                m.reportUnknown(["directory"], into: &diagnostics)
                if let v = try absolutePath(m, "directory") { settings.metrics.directory = v }
            }
            if let node = f.value("testing") {
                let t = try FieldReader(node, "testing")
                t.reportUnknown(["breakContainerdStart"], into: &diagnostics)
                settings.testing.breakContainerdStart = try t.bool("breakContainerdStart") ?? false
            }
        } catch {
            diagnostics.append(error)
        }
        return (settings, diagnostics)
    }

    static func restartPolicy(_ node: YAMLNode) throws(Diagnostic) -> Restart.Policy {
        let text = try node.string("restart policy")
        guard let policy = Restart.Policy(rawValue: text) else {
            throw .error("restart policy \(Quote.value(text)) is not auto or never", at: node.location)
        }
        return policy
    }

    static func count(_ node: YAMLNode, _ what: String, _ range: ClosedRange<Int>) throws(Diagnostic) -> Int {
        let text = try node.string(what)
        guard let value = Int(text), range.contains(value) else {
            throw .error("\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), found \(Quote.value(text))", at: node.location)
        }
        return value
    }

    /// The longest any duration setting may be unless it says otherwise: longer values are
    /// typing mistakes, and every later computation (timers, sums) stays far from overflow.
    static let maxDuration: Duration = .seconds(24 * 3600)

    static func describe(_ d: Duration) -> String {
        let s = d.components.seconds
        if s % 3600 == 0 { return "\(s / 3600)h" }
        if s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }

    static func duration(_ node: YAMLNode, _ what: String, allowZero: Bool = false, max: Duration = maxDuration) throws(Diagnostic) -> Duration {
        let text = try node.string(what)
        let shown = Quote.value(text)
        switch Duration.parseChecked(text) {
        case .failure(.invalid):
            throw .error("\(what) \(shown) is not a duration such as 200ms, 2s or 1m30s", at: node.location)
        case .failure(.overflow):
            throw .error("\(what) \(shown) is out of range: at most \(describe(max))", at: node.location)
        case .success(let value):
            if value > max { throw .error("\(what) \(shown) is out of range: at most \(describe(max))", at: node.location) }
            if value < .zero || (value == .zero && !allowZero) {
                throw .error("\(what) \(shown) must be longer than 0", at: node.location)
            }
            return value
        }
    }

    static func absolutePath(_ f: FieldReader, _ key: String) throws(Diagnostic) -> String? {
        guard let node = f.value(key) else { return nil }
        let text = try node.string("\(f.what).\(key)")
        guard text.hasPrefix("/"), !text.split(separator: "/").contains(".."), !text.contains("\0") else {
            throw .error("\(f.what).\(key) must be an absolute path without \"..\"", at: node.location)
        }
        return text
    }

    /// The runtimes to act on: the configured list, or those whose configuration exists under
    /// the root.
    public func selectedRuntimes(root: HostRoot) -> [Runtime] {
        switch runtimes {
        case .explicit(let list): return list
        case .auto:
            var found: [Runtime] = []
            if FileSystem.exists(root.path(containerd.configFile)) || FileSystem.isDirectory(root.path("/etc/containerd")) {
                found.append(.containerd)
            }
            if FileSystem.exists(root.path("/etc/crio/crio.conf")) || FileSystem.isDirectory(root.path("/etc/crio")) {
                found.append(.crio)
            }
            return found
        }
    }
}
