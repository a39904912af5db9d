import DesiredState
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HealthProbe
import RuntimeActions
import RuntimeWriters

/// What `/run/mirror-agent/status.json` holds: the last pass, the files in force, the runtimes.
/// `mirror-agent status` reads it; fleet tooling may too.
struct StatusReport: Codable, Equatable {
    struct Runtime: Codable, Equatable {
        var name: String
        /// "ok", "needs-fix", "restart-pending", "restart-failed", ...
        var state: String
        var hostsDirectory: String?
        var lastAction: RuntimeActionReport?
        var lastActionTime: Date?
        var pending: String?
        /// Why the pending action is pending ("restart pending: containerd started before
        /// config.toml changed", "config.toml changed", ...).
        var pendingReason: String?
        /// What could not be written for this runtime (its files are not all in force).
        var error: String?
    }

    var version = 1
    var pid: Int32
    var generation: Int
    /// "ok", "invalid" (the last good configuration stays in force) or "failed".
    var result: String
    var lastReconcile: Date
    var lastSuccess: Date?
    var error: String?
    var desiredFiles: [String]
    var registries: Int
    var mirrors: Int
    var managedFiles: [String]
    var lastChanged: [String]
    var warnings: [String]
    var runtimes: [Runtime]
    /// Per mirror endpoint: state (unknown, up, failing, down, demoted), the last probe's
    /// latency and cause. Every endpoint of the desired state is here, probed or not.
    var probes: [EndpointHealth] = []
    /// False when `probe.enabled: false` (then nothing is probed and nothing is counted).
    var probesEnabled: Bool? = true
    /// Configuration errors of this node found by the probes (no system trust store, an
    /// unreadable CA file...): they never count against a mirror.
    var nodeErrors: [String] = []
    /// The last reload (SIGHUP): how `mirror-agent reload` learns that the daemon has applied it.
    var reload: Reload?

    struct Reload: Codable, Equatable {
        /// The number `mirror-agent reload` sent with its signal (sigqueue); 0 for a plain kill.
        var request: Int32
        var time: Date
        /// "ok", or "refused": agent.yaml or the desired state was invalid; the previous settings
        /// and the last good configuration stay in force.
        var result: String
        var error: String?
    }

    /// Node errors, each once, from the endpoints whose last probe failed on this node.
    static func nodeErrors(_ probes: [EndpointHealth]) -> [String] {
        var errors: [String] = []
        // A missing trust store first: it is the one that makes every HTTPS probe useless.
        let ordered = probes.filter { $0.last?.cause == "node-no-trust-store" } + probes.filter { $0.last?.cause != "node-no-trust-store" }
        for probe in ordered {
            guard let last = probe.last, last.local, let error = last.error, !errors.contains(error) else { continue }
            errors.append(error)
        }
        return errors
    }

    /// "2 mirrors: 1 up, 1 failing (1/3)" plus the first endpoint that is not up, with its cause.
    /// Every endpoint is counted; none is left out because it has not been declared down yet.
    func mirrorSummary() -> String {
        var text = "\(mirrors) mirror\(mirrors == 1 ? "" : "s")"
        if probesEnabled == false { return text + " (probes off)" }
        guard !probes.isEmpty else { return text }
        if probes.count != mirrors { text += " (\(probes.count) endpoint\(probes.count == 1 ? "" : "s"))" }
        var counts: [String] = []
        func count(_ state: EndpointHealth.State, _ label: String) {
            let matching = probes.filter { $0.state == state }
            guard !matching.isEmpty else { return }
            if state == .failing {
                // "1 failing (1/3)", "9 failing (1/3)", "3 failing (1/3, 2/3 x2)": short for many.
                var groups: [(String, Int)] = []
                for step in matching.map({ "\($0.consecutiveFailures)/\($0.failureThreshold)" }).sorted() {
                    if groups.last?.0 == step { groups[groups.count - 1].1 += 1 } else { groups.append((step, 1)) }
                }
                let steps = groups.count == 1 ? [groups[0].0] : groups.map { $0.1 == 1 ? $0.0 : "\($0.0) x\($0.1)" }
                counts.append("\(matching.count) failing (\(steps.joined(separator: ", ")))")
            } else {
                counts.append("\(matching.count) \(label)")
            }
        }
        count(.up, "up")
        count(.failing, "failing")
        count(.down, "down")
        count(.demoted, "demoted")
        count(.unknown, "unknown")
        text += ": " + counts.joined(separator: ", ")
        // Name the worst endpoint and why, so the one line says what to look at.
        let order: [EndpointHealth.State] = [.demoted, .down, .failing, .unknown]
        let notUp = probes.filter { $0.state != .up && !($0.last?.local ?? false) && $0.last != nil }
            .sorted { (order.firstIndex(of: $0.state) ?? 9, $0.id) < (order.firstIndex(of: $1.state) ?? 9, $1.id) }
        if let worst = notUp.first {
            text += " [\(worst.id) \(worst.stateText): \(worst.causeText ?? "no answer")\(notUp.count > 1 ? "; +\(notUp.count - 1) more" : "")]"
        }
        return text
    }

    /// The one line systemd shows: `3 registries, 5 mirrors: 4 up, 1 failing (1/3) [https://m/v2/
    /// failing (1/3): connection refused], containerd ok, crio reloaded 2m ago`.
    func statusLine(now: Date = Date()) -> String {
        var parts = ["\(registries) registr\(registries == 1 ? "y" : "ies"), \(mirrorSummary())"]
        for runtime in runtimes {
            var text = "\(runtime.name) \(runtime.state)"
            if let reason = runtime.pendingReason { text += " (\(reason))" }
            if let action = runtime.lastAction, let time = runtime.lastActionTime, runtime.pending == nil {
                let verb = action.action.hasPrefix("reload") ? "reloaded" : "restarted"
                switch action.result {
                // auto_reload_registries: CRI-O picked the drop-in up itself, nothing was sent.
                case .done where action.action == "none": text = "\(runtime.name) reloads itself (auto_reload_registries)"
                case .done: text = "\(runtime.name) \(verb) \(Self.ago(time, now: now))"
                case .pending: text = "\(runtime.name) \(action.action) pending"
                case .rolledBack: text = "\(runtime.name) \(action.action) FAILED, rolled back \(Self.ago(time, now: now))"
                case .failed: text = "\(runtime.name) \(action.action) FAILED \(Self.ago(time, now: now))"
                }
            }
            parts.append(text)
        }
        var line = parts.joined(separator: ", ")
        if let first = nodeErrors.first {
            line = "\(Self.publicNodeError(first))\(nodeErrors.count > 1 ? " (+\(nodeErrors.count - 1) more)" : ""); " + line
        }
        if let error { return "error: \(Self.publicError(error)) (last good configuration in force); " + line }
        return line
    }

    /// What status.json and STATUS= say of input errors: the first one's place and kind
    /// (`path:line:column: invalid duration`) and how many more; never a value from the input,
    /// which only the journal (and `mirror-agent validate`) shows. See SECURITY.md.
    static func publicErrors(_ errors: [Diagnostic]) -> String? {
        guard let first = errors.first else { return nil }
        return first.publicDescription + (errors.count > 1 ? " (+\(errors.count - 1) more)" : "")
    }

    /// STATUS= is shown to every user by `systemctl status`: an input error appears there by its
    /// place and kind only (status.json holds no more than that either); the message itself is
    /// in the journal.
    static func publicError(_ error: String) -> String {
        let firstLine = error.prefix(while: { $0 != "\n" })
        // "path:line:column: kind (+N more)": keep the place, and the kind when it is one.
        let parts = firstLine.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        if parts.count == 4, parts[0].hasPrefix("/"), Int(parts[1]) != nil, Int(parts[2]) != nil {
            var rest = parts[3].trimmingWhitespace()
            var more = error.split(separator: "\n").count - 1
            if let open = rest.ranges(of: " (+").last, rest.hasSuffix(" more)"),
                let n = Int(rest[open.upperBound...].dropLast(" more)".count))
            {
                more += n
                rest = String(rest[..<open.lowerBound])
            }
            let kind = DiagnosticKind.all.contains(rest) ? rest : "invalid input"
            return "\(kind) at \(parts[0]):\(parts[1]):\(parts[2])\(more > 0 ? " and \(more) more" : "") (journalctl -u mirror-agent or mirror-agent validate says what)"
        }
        return Quote.message(String(firstLine))
    }

    /// A node error as STATUS= shows it: a TLS file that cannot be read is named in
    /// status.json, `mirror-agent status` and the journal (root's), not in the line every user
    /// sees: its path is a value from the desired state.
    static func publicNodeError(_ error: String) -> String {
        let unreadable = "node configuration error: cannot read "
        guard error.hasPrefix(unreadable) else { return error }
        return unreadable + "a TLS file named in the desired state (mirror-agent status says which)"
    }

    static func ago(_ date: Date, now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        if seconds < 60 { return "\(seconds)s ago" }
        if seconds < 3600 { return "\(seconds / 60)m ago" }
        if seconds < 86400 { return "\(seconds / 3600)h ago" }
        return "\(seconds / 86400)d ago"
    }

    static func encoder() -> JSONEncoder { jsonEncoder() }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Replaces the status file atomically.
    func write(to hostPath: String, root: HostRoot) throws {
        var data = try Self.encoder().encode(self)
        data.append(0x0A)
        // Root's alone (in a 0700 directory too), though it names problems by place and kind only:
        // it lists the files in force and the mirrors' health. See SECURITY.md.
        try AtomicWriter(root: root).write(Array(data), hostPath: hostPath, mode: 0o600)
    }

    static func read(from hostPath: String, root: HostRoot) -> Result<StatusReport, Error> {
        Result {
            // The agent's one safe reader: never blocks on a FIFO, never reads past 16 MiB.
            switch FileSystem.read(root.path(hostPath), limit: 16 << 20) {
            case .success(let bytes): return try decoder().decode(StatusReport.self, from: Data(bytes))
            case .failure(.missing): throw CocoaError(.fileReadNoSuchFile)
            case .failure(let error): throw StatusReadError(description: "\(root.path(hostPath)): \(DesiredStateLoader.describe(error))")
            }
        }
    }
}

struct StatusReadError: Error, CustomStringConvertible {
    var description: String
}
