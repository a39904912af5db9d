import ArgumentParser
import DesiredState
import Diagnostics
import HealthProbe
import RuntimeActions
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `mirror-agent status`: what the daemon last did, from its status file.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the daemon's last reconcile, the files in force and the runtimes' state.",
        discussion: "Lists every mirror endpoint with its state (unknown, up, failing k/N, down, demoted), last check, latency and cause. Reads the status file (status.file in agent.yaml, default /run/mirror-agent/status.json). Exit 1 when there is none (the daemon is not running), 2 when the desired state in force is invalid. Input problems are named by place and kind only (the status file never holds input values): `mirror-agent validate` says what is wrong."
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print the status file as JSON.")
    var json = false

    func run() throws {
        let root = common.hostRoot
        let (settings, _) = AgentSettings.load(root: root)
        let report: StatusReport
        switch StatusReport.read(from: settings.status.file, root: root) {
        case .success(let r): report = r
        case .failure:
            FileHandleOutput.standardError("no status at \(root.path(settings.status.file)): is mirror-agent running? (systemctl status mirror-agent)")
            throw ExitCode(ExitStatus.failedToAct)
        }
        if json {
            var data = (try? StatusReport.encoder().encode(report)) ?? Data()
            data.append(0x0A)
            FileHandleOutput.write(Array(data), to: 1)
        } else {
            let formatter = Date.ISO8601FormatStyle()
            print("status:      \(report.statusLine())")
            print("result:      \(report.result) (generation \(report.generation), pid \(report.pid))")
            print("last pass:   \(formatter.format(report.lastReconcile)) (\(StatusReport.ago(report.lastReconcile, now: Date())))")
            if let error = report.error {
                print("error:       \(error)")
                // status.json names problems by place and kind only (SECURITY.md); the messages
                // are in the journal, and validate says them for the files as they are now.
                if report.result == "invalid" { print("details:     mirror-agent validate (the files as they are now), journalctl -u mirror-agent (as the daemon saw them)") }
            }
            print("desired:     \(report.desiredFiles.isEmpty ? "(no files)" : report.desiredFiles.joined(separator: "\n             "))")
            print("in force:    \(report.managedFiles.isEmpty ? "(no files)" : report.managedFiles.joined(separator: "\n             "))")
            for runtime in report.runtimes {
                var line = "\(runtime.name.padding(12))\(runtime.state)"
                if let dir = runtime.hostsDirectory { line += ", hosts in \(dir)" }
                if let reason = runtime.pendingReason { line += "; \(reason)" }
                if let error = runtime.error { line += "; not in force: \(error)" }
                if let action = runtime.lastAction { line += "; last \(action.action): \(action.message)" }
                print(line)
            }
            if report.probesEnabled != false {
                print("mirrors:     \(report.mirrorSummary())")
                for error in report.nodeErrors { print("node error:  \(error)") }
                if !report.probes.isEmpty {
                    let width = max(8, report.probes.map(\.id.count).max() ?? 0)
                    print("  " + "ENDPOINT".padding(width + 2) + "STATE          LAST CHECK  LATENCY  CAUSE")
                    for p in report.probes {
                        let checked = p.last.map { StatusReport.ago($0.checkedAt, now: Date()) } ?? "never"
                        let latency = p.last.map { formatDouble("%.0fms", $0.latencySeconds * 1000) } ?? "-"
                        print("  " + p.id.padding(width + 2) + p.stateText.padding(15) + checked.padding(12) + latency.padding(9) + (p.causeText ?? "-"))
                    }
                }
            }
            if !report.warnings.isEmpty {
                print("warnings:    \(report.warnings.count)")
                for w in report.warnings.prefix(20) { print("  \(w)") }
            }
        }
        if report.result == "invalid" { throw ExitCode(ExitStatus.invalidInput) }
    }
}
