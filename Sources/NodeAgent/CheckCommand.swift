import AgentCore
import ArgumentParser
import DesiredState
import Diagnostics
import RuntimeActions
import RuntimeWriters

/// `mirror-agent check`: is containerd set up for registry mirrors?
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check containerd's configuration for what registry mirrors need.",
        discussion: "Reports config_path, discard_unpacked_layers and deprecated registry.mirrors/configs, each with the file and line to change, and a restart that is pending (containerd started before config.toml changed, or a restart the agent decided and has not carried out). Exit 0 when all hold, 3 when the runtime needs a fix or a restart, 1 when the configuration cannot be read."
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print a JSON report.")
    var json = false

    struct Report: Encodable {
        var runtime = "containerd"
        var configFile: String
        var exists: Bool
        var schemaVersion: Int
        var containerdVersion: String?
        var hostsDirectory: String
        var needsFix: Bool
        var checks: [ContainerdPrerequisites.Check]
        var fix: [String]
        /// "restart pending: containerd started before config.toml changed", or the reason of a
        /// restart the agent recorded and has not carried out yet.
        var restartPending: String?
    }

    func run() throws {
        let root = common.hostRoot
        let (settings, diagnostics) = AgentSettings.load(root: root)
        if diagnostics.hasErrors {
            for d in diagnostics.sorted { FileHandleOutput.standardError(d.description) }
            throw ExitCode(ExitStatus.invalidInput)
        }
        let version = RuntimeDetection.containerdVersion(root: root)
        let prerequisites: ContainerdPrerequisites
        // Registry credentials of the desired state belong in containerd's configuration too
        // (an invalid desired state gives none: `validate` reports it).
        let credentials = DesiredStateLoader.load(root: root, settings: settings).model.credentials
        do {
            prerequisites = try ContainerdPrerequisites.inspect(
                configFile: settings.containerd.configFile, root: root, containerdVersion: version, preferredHostsDirectory: settings.containerd.hostsDir,
                credentials: credentials)
        } catch {
            FileHandleOutput.standardError(error.description)
            throw ExitCode(ExitStatus.failedToAct)
        }
        let reconciliation = Reconciliation(root: root, settings: settings)
        var restartPending: String?
        if let change = reconciliation.staleContainerd() {
            restartPending = StaleRuntime.message(runtime: "containerd", file: change.path) + " (\(change.path))"
        } else if let recorded = reconciliation.loadPending().0.containerdRestart {
            restartPending = recorded.reason.hasPrefix("restart pending") ? recorded.reason : "restart pending: \(recorded.reason)"
        }
        let fixes = prerequisites.fixes.flatMap { fix in fix.changes.map { "\(root.path(fix.hostPath)): \($0)" } }
        if json {
            printJSON(
                Report(
                    configFile: root.path(settings.containerd.configFile), exists: prerequisites.exists, schemaVersion: prerequisites.schemaVersion,
                    containerdVersion: version, hostsDirectory: prerequisites.hostsDirectory, needsFix: prerequisites.needsFix,
                    checks: prerequisites.checks, fix: fixes, restartPending: restartPending))
        } else {
            print("containerd \(version ?? "(version unknown)"), \(root.path(settings.containerd.configFile))\(prerequisites.exists ? "" : " (missing: containerd's defaults apply)"), config version \(prerequisites.schemaVersion)")
            for check in prerequisites.checks {
                let place = check.file.map { " (\($0)\(check.line.map { ":\($0)" } ?? ""))" } ?? ""
                print("  \(check.status.rawValue.padding(8))\(check.message)\(place)")
            }
            print("hosts directory: \(prerequisites.hostsDirectory)")
            if prerequisites.needsFix {
                print("needs a fix; mirror-agent apply would:")
                for line in fixes { print("  \(line)") }
            }
            if let restartPending { print(restartPending) }
        }
        if prerequisites.needsFix || restartPending != nil { throw ExitCode(ExitStatus.needsFix) }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
