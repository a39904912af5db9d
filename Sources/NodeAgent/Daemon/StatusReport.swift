import DesiredState
import Diagnostics
import Foundation
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
    /// Per mirror endpoint: state, latency and last error of the probes.
    var probes: [EndpointHealth] = []

    /// The one line systemd shows: `3 registries, 5 mirrors, containerd ok, crio reloaded 2m ago`.
    func statusLine(now: Date = Date()) -> String {
        var mirrorText = "\(mirrors) mirror\(mirrors == 1 ? "" : "s")"
        let probed = probes.filter { $0.state != .unknown }
        if !probed.isEmpty {
            let up = probed.filter { $0.state == .up }.count
            mirrorText += " (\(up) of \(probed.count) endpoint\(probed.count == 1 ? "" : "s") up)"
        }
        var parts = ["\(registries) registr\(registries == 1 ? "y" : "ies"), \(mirrorText)"]
        for runtime in runtimes {
            var text = "\(runtime.name) \(runtime.state)"
            if let action = runtime.lastAction, let time = runtime.lastActionTime, runtime.pending == nil {
                let verb = action.action.hasPrefix("reload") ? "reloaded" : "restarted"
                switch action.result {
                case .done: text = "\(runtime.name) \(verb) \(Self.ago(time, now: now))"
                case .pending: text = "\(runtime.name) \(action.action) pending"
                case .rolledBack: text = "\(runtime.name) \(action.action) FAILED, rolled back \(Self.ago(time, now: now))"
                case .failed: text = "\(runtime.name) \(action.action) FAILED \(Self.ago(time, now: now))"
                }
            }
            parts.append(text)
        }
        if let error { return "error: \(Self.publicError(error)) (last good configuration in force); " + parts.joined(separator: ", ") }
        return parts.joined(separator: ", ")
    }

    /// STATUS= is shown to every user by `systemctl status`: an input error appears there by its
    /// place only (`path:line:column`), never with the values the message quotes; the message
    /// itself is in the journal and in status.json (root's alone).
    static func publicError(_ error: String) -> String {
        let firstLine = error.prefix(while: { $0 != "\n" })
        // "path:line:column: message": keep the place.
        let parts = firstLine.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        if parts.count == 4, parts[0].hasPrefix("/"), Int(parts[1]) != nil, Int(parts[2]) != nil {
            let more = error.split(separator: "\n").count - 1
            return "invalid input at \(parts[0]):\(parts[1]):\(parts[2])\(more > 0 ? " and \(more) more" : "") (journalctl -u mirror-agent or mirror-agent status says what)"
        }
        return Quote.message(String(firstLine))
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
        // Root's alone (in a 0700 directory too): errors quote desired-state values. See SECURITY.md.
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
