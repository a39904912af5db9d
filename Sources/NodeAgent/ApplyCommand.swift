import ArgumentParser
import DesiredState
import Diagnostics
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
        let loaded =
            desired.isEmpty
            ? DesiredStateLoader.load(root: root, settings: settings)
            : DesiredStateLoader.load(paths: desired, root: root, settings: settings)
        var diagnostics = settingsDiagnostics
        diagnostics.append(contentsOf: loaded.diagnostics)
        if diagnostics.hasErrors {
            if json {
                printJSON(ApplyReport(invalid: diagnostics))
            } else {
                for d in diagnostics.sorted { FileHandleOutput.standardError(d.description) }
                FileHandleOutput.standardError("nothing written: the desired state is invalid")
            }
            throw ExitCode(ExitStatus.invalidInput)
        }
        let reconciler = Reconciler(root: root, settings: settings, containerdFeatures: RuntimeDetection.containerdFeatures(root: root))
        let plan = reconciler.plan(loaded.model)
        let outcome = reconciler.apply(plan, dryRun: dryRun)
        var warnings = diagnostics.warnings + plan.warnings + outcome.warnings
        warnings = warnings.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }

        if json {
            printJSON(ApplyReport(plan: plan, outcome: outcome, warnings: warnings, root: root, dryRun: dryRun))
        } else {
            for warning in warnings { FileHandleOutput.standardError(warning.description) }
            let verb = dryRun ? "would be " : ""
            for change in outcome.changes {
                print("\(verb)\(change.kind.rawValue): \(root.path(change.path))\(change.backup.map { " (original kept as \(root.path($0)))" } ?? "")")
                if diff {
                    print(unifiedDiff(old: change.before ?? "", new: change.after ?? "", oldName: change.before == nil ? "/dev/null" : root.path(change.path), newName: change.after == nil ? "/dev/null" : root.path(change.path)), terminator: "")
                }
            }
            for failure in outcome.failures { FileHandleOutput.standardError("error: \(failure)") }
            let summary = outcome.changed ? "\(outcome.changes.count) file\(outcome.changes.count == 1 ? "" : "s") \(dryRun ? "would change" : "changed")" : "no changes"
            print("\(summary); \(outcome.unchanged.count) unchanged; runtimes: \(plan.runtimes.isEmpty ? "none" : plan.runtimes.map(\.rawValue).joined(separator: ", "))")
        }
        if !outcome.failures.isEmpty { throw ExitCode(ExitStatus.failedToAct) }
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

    init(plan: Reconciler.Plan, outcome: ManagedFiles.Outcome, warnings: [Diagnostic], root: HostRoot, dryRun: Bool) {
        changed = outcome.changed
        self.dryRun = dryRun
        written = outcome.changes.filter { $0.kind != .removed }.map { root.path($0.path) }
        removed = outcome.changes.filter { $0.kind == .removed }.map { root.path($0.path) }
        unchanged = outcome.unchanged.map(root.path)
        skipped = plan.skipped.map { Skipped(runtime: $0.runtime.rawValue, source: $0.source, reason: $0.reason, location: $0.location?.description) }
        self.warnings = warnings.map(DiagnosticJSON.init)
        errors = []
        failures = outcome.failures
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
    }
}
