import AgentCore
import ArgumentParser
import DesiredState
import Diagnostics
import RuntimeActions
import RuntimeWriters

/// `mirror-agent apply`: render the desired state and put it in force.
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Render the desired state into the runtimes' files and write what changed.",
        discussion: "Exit 0 on success (changed or not), 2 on invalid desired state (nothing written), 1 on a failure to write."
    )

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: ArgumentHelp("A desired-state file to use instead of the configured ones (repeatable).", valueName: "PATH"))
    var desired: [String] = []
    @Flag(name: .long, help: "Say what would change; write nothing.")
    var dryRun = false
    @Flag(name: .long, help: "Show a unified diff of every change.")
    var diff = false
    @Flag(name: .long, help: "Print a JSON report: {changed, written[], removed[], skipped[], warnings[]}.")
    var json = false

    func run() throws {
        let root = common.hostRoot
        let (settings, settingsDiagnostics) = AgentSettings.load(root: root)
        if settingsDiagnostics.hasErrors {
            report(invalid: settingsDiagnostics)
            throw ExitCode(ExitStatus.invalidInput)
        }
        let reconciliation = Reconciliation(root: root, settings: settings, desiredPaths: desired, dryRun: dryRun)
        var result = reconciliation.run()
        result.diagnostics.append(contentsOf: settingsDiagnostics)
        if result.invalid {
            report(invalid: result.diagnostics)
            throw ExitCode(ExitStatus.invalidInput)
        }
        if !dryRun { (result.actions, _) = reconciliation.perform(result.pending) }
        var warnings = result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings
        warnings = warnings.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }

        if json {
            printJSON(ApplyReport(result: result, warnings: warnings, root: root, dryRun: dryRun))
        } else {
            for warning in warnings { FileHandleOutput.standardError(warning.description) }
            let verb = dryRun ? "would be " : ""
            for change in result.outcome.changes + result.configChanges {
                print("\(verb)\(change.kind.rawValue): \(root.path(change.path))\(change.backup.map { " (original kept as \(root.path($0)))" } ?? "")")
                if diff {
                    if change.secret {
                    print("(the contents of \(root.path(change.path)) are not shown: it holds a secret)")
                } else {
                    print(unifiedDiff(old: change.before ?? "", new: change.after ?? "", oldName: change.before == nil ? "/dev/null" : root.path(change.path), newName: change.after == nil ? "/dev/null" : root.path(change.path)), terminator: "")
                }
                }
            }
            for note in result.notes { print("note: \(note)") }
            for action in result.actions { print("\(action.result == .done ? "" : "\(action.result.rawValue): ")\(action.message)") }
            for failure in result.outcome.failures { FileHandleOutput.standardError("error: \(failure)") }
            let count = result.outcome.changes.count + result.configChanges.count
            let summary = count > 0 ? "\(count) file\(count == 1 ? "" : "s") \(dryRun ? "would change" : "changed")" : "no changes"
            print("\(summary); \(result.outcome.unchanged.count) unchanged; runtimes: \(result.plan.runtimes.isEmpty ? "none" : result.plan.runtimes.map(\.rawValue).joined(separator: ", "))")
        }
        if result.failed { throw ExitCode(ExitStatus.failedToAct) }
    }

    private func report(invalid diagnostics: DiagnosticList) {
        if json {
            printJSON(ApplyReport(invalid: diagnostics))
        } else {
            for d in diagnostics.sorted { FileHandleOutput.standardError(d.description) }
            FileHandleOutput.standardError("nothing written: the desired state is invalid")
        }
    }
}

/// The `apply --json` report fleet tooling reads.
struct ApplyReport: Encodable {
    struct Skipped: Encodable {
        var runtime: String
        var source: String
        var reason: String
        var location: String?
    }

    var changed: Bool
    var dryRun: Bool
    var written: [String]
    var removed: [String]
    var unchanged: [String]
    var skipped: [Skipped]
    var warnings: [DiagnosticJSON]
    var errors: [DiagnosticJSON]
    var failures: [String]
    var runtimeActions: [RuntimeActionReport]
    var prerequisites: [ContainerdPrerequisites.Check]
    var notes: [String]

    init(result: Reconciliation.Result, warnings: [Diagnostic], root: HostRoot, dryRun: Bool) {
        let changes = result.outcome.changes + result.configChanges
        changed = !changes.isEmpty
        self.dryRun = dryRun
        written = changes.filter { $0.kind != .removed }.map { root.path($0.path) }
        removed = changes.filter { $0.kind == .removed }.map { root.path($0.path) }
        unchanged = result.outcome.unchanged.map(root.path)
        skipped = result.plan.skipped.map { Skipped(runtime: $0.runtime.rawValue, source: $0.source, reason: $0.reason, location: $0.location?.description) }
        self.warnings = warnings.map(DiagnosticJSON.init)
        errors = []
        failures = result.outcome.failures
        runtimeActions = result.actions
        prerequisites = result.prerequisites?.checks ?? []
        notes = result.notes
    }

    init(invalid diagnostics: DiagnosticList) {
        changed = false
        dryRun = false
        written = []
        removed = []
        unchanged = []
        skipped = []
        warnings = diagnostics.warnings.map(DiagnosticJSON.init)
        errors = diagnostics.sorted.filter { $0.severity == .error }.map(DiagnosticJSON.init)
        failures = []
        runtimeActions = []
        prerequisites = []
        notes = []
    }
}
