import ArgumentParser
import DesiredState
import Diagnostics
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HealthProbe

/// `mirror-agent probe`: one probe round now, over every mirror of the desired state.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Probe every mirror endpoint now (GET <mirror>/v2/) and print the results.",
        discussion: "200 and 401 mean up. Uses each mirror's own TLS settings, the system trust store and probe.* from agent.yaml. One round, so no hysteresis: each endpoint is up, down (with the cause) or unknown (this node could not probe it: no trust store, unreadable CA file). Exit 0 when the round ran (see the table or --json for what is down), 1 on a node configuration error, 2 on invalid desired state."
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print JSON.")
    var json = false

    struct Report: Encodable {
        var endpoints: Int
        var up: Int
        var down: Int
        var unknown: Int
        var nodeErrors: [String]
        var results: [ProbeResult]
    }

    static func state(_ r: ProbeResult) -> String { r.up ? "up" : r.local ? "unknown" : "down" }

    func run() throws {
        let root = common.hostRoot
        let (settings, settingsDiagnostics) = AgentSettings.load(root: root)
        let loaded = DesiredStateLoader.load(root: root, settings: settings)
        if settingsDiagnostics.hasErrors || !loaded.isValid {
            for d in (settingsDiagnostics.errors + loaded.diagnostics.errors) { FileHandleOutput.standardError(d.description) }
            throw ExitCode(ExitStatus.invalidInput)
        }
        let targets = ProbeTargets.from(loaded.model)
        let results = runBlocking { () async -> [ProbeResult] in
            let prober = MirrorProber(settings: probeSettings(settings.probe), root: root)
            let results = await prober.probe(targets)
            await prober.shutdown()
            return results
        }
        var nodeErrors: [String] = []
        for r in results where r.local { if let e = r.error, !nodeErrors.contains(e) { nodeErrors.append(e) } }
        let up = results.filter(\.up).count
        let unknown = results.filter(\.local).count
        if json {
            printJSON(Report(endpoints: results.count, up: up, down: results.count - up - unknown, unknown: unknown, nodeErrors: nodeErrors, results: results))
        } else if results.isEmpty {
            print("no mirrors to probe")
        } else {
            let width = max(8, results.map(\.id.count).max() ?? 0)
            print("ENDPOINT".padding(width + 2) + "STATE    STATUS LATENCY  REGISTRIES  CAUSE")
            for r in results {
                let status = r.status.map(String.init) ?? "-"
                let latency = formatDouble("%.0fms", r.latencySeconds * 1000)
                print(r.id.padding(width + 2) + Self.state(r).padding(9) + status.padding(7) + latency.padding(9) + r.registries.joined(separator: ",") + (r.error.map { "  \($0)" } ?? ""))
            }
            var summary = "\(results.count) endpoint\(results.count == 1 ? "" : "s"): \(up) up, \(results.count - up - unknown) down"
            if unknown > 0 { summary += ", \(unknown) unknown" }
            print(summary)
        }
        for error in nodeErrors { FileHandleOutput.standardError(error) }
        if !nodeErrors.isEmpty { throw ExitCode(ExitStatus.failedToAct) }
    }
}

func probeSettings(_ probe: AgentSettings.Probe) -> ProbeSettings {
    ProbeSettings(connectTimeout: probe.connectTimeout, timeout: probe.timeout, concurrency: probe.concurrency)
}

/// Runs async work from the synchronous command line and waits for it.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    // Normal priority, not the user-initiated one a task made on the main thread gets (nice -2).
    Task(priority: .medium) {
        box.value = await body()
        done.signal()
    }
    done.wait()
    return box.value!
}

/// A value handed from a task to a waiting thread (guarded by the semaphore's ordering).
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
