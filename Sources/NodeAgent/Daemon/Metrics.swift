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

/// Prometheus metrics in the text exposition format, for node_exporter's textfile collector.
struct MetricsTextfile {
    var reconcileTotal: [String: Int] = [:]
    var restartsTotal: [String: Int] = [:]  // "runtime\u{0}result"
    var lastReconcile: Date?
    var health: [EndpointHealth] = []

    static let fileName = "mirror_agent.prom"

    func render() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("mirror_agent_mirror_up", "gauge", "Whether a mirror endpoint is up (1) or not (0: failing, down or demoted), after hysteresis; absent while unknown.")
        for endpoint in health where endpoint.state != .unknown {
            for registry in endpoint.registries {
                out += "mirror_agent_mirror_up{registry=\(Self.label(registry)),endpoint=\(Self.label(endpoint.id))} \(endpoint.state == .up ? 1 : 0)\n"
            }
        }
        family("mirror_agent_mirror_state", "gauge", "The state of each mirror endpoint (unknown, up, failing, down, demoted): 1 for the current one.")
        for endpoint in health {
            for state in [EndpointHealth.State.unknown, .up, .failing, .down, .demoted] {
                out += "mirror_agent_mirror_state{endpoint=\(Self.label(endpoint.id)),state=\(Self.label(state.rawValue))} \(endpoint.state == state ? 1 : 0)\n"
            }
        }
        family("mirror_agent_mirror_consecutive_failures", "gauge", "Failed probes in a row of a mirror endpoint (down at probe.failureThreshold).")
        for endpoint in health {
            out += "mirror_agent_mirror_consecutive_failures{endpoint=\(Self.label(endpoint.id))} \(endpoint.consecutiveFailures)\n"
        }
        family("mirror_agent_probe_cause", "gauge", "The cause of the last probe of a mirror endpoint that got no registry answer (1); node-* causes are this node's.")
        for endpoint in health {
            if let last = endpoint.last, !last.up, let cause = last.cause {
                out += "mirror_agent_probe_cause{endpoint=\(Self.label(endpoint.id)),cause=\(Self.label(cause))} 1\n"
            }
        }
        family("mirror_agent_node_config_errors", "gauge", "Endpoints the probes could not check because of this node's configuration (no trust store, unreadable CA file).")
        out += "mirror_agent_node_config_errors \(health.filter { $0.last?.local == true }.count)\n"
        family("mirror_agent_probe_duration_seconds", "gauge", "How long the last probe of a mirror endpoint took.")
        for endpoint in health {
            if let last = endpoint.last {
                out += "mirror_agent_probe_duration_seconds{endpoint=\(Self.label(endpoint.id))} \(Self.number(last.latencySeconds))\n"
            }
        }
        family("mirror_agent_reconcile_total", "counter", "Reconcile passes by result (ok, invalid, failed).")
        for (result, count) in reconcileTotal.sorted(by: { $0.key < $1.key }) {
            out += "mirror_agent_reconcile_total{result=\(Self.label(result))} \(count)\n"
        }
        family("mirror_agent_last_reconcile_timestamp_seconds", "gauge", "When the last reconcile pass ended (Unix time).")
        if let lastReconcile { out += "mirror_agent_last_reconcile_timestamp_seconds \(Self.number(lastReconcile.timeIntervalSince1970))\n" }
        family("mirror_agent_runtime_restarts_total", "counter", "Runtime restarts and reloads by runtime and result (done, rolled-back, failed, pending).")
        for (key, count) in restartsTotal.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            out += "mirror_agent_runtime_restarts_total{runtime=\(Self.label(parts[0])),result=\(Self.label(parts[1]))} \(count)\n"
        }
        return out
    }

    /// A label value, escaped as the text format wants (backslash, quote, newline).
    static func label(_ value: String) -> String {
        "\"" + value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n") + "\""
    }

    static func number(_ value: Double) -> String {
        formatDouble("%.6f", value)
    }

    /// Written atomically into `directory` when it exists (node_exporter reads whatever is there).
    func write(directory: String, root: HostRoot) throws {
        guard FileSystem.isDirectory(root.path(directory)) else { return }
        try AtomicWriter(root: root).write(Array(render().utf8), base: directory, relative: Self.fileName, mode: 0o644)
    }
}
