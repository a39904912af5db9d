import AgentCore
import ArgumentParser
import DesiredState
import Diagnostics
import RuntimeWriters

/// `mirror-agent validate [PATH...]`: every problem in the desired state, nothing written.
/// `mirror-agent validate --as mirrors.d/NAME.yaml FILE`: FILE judged in place, merged with every
/// desired-state file already installed, and what it would change in the rendered files.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check desired-state files and agent.yaml; exit 0 when valid, 2 when not.",
        discussion: """
            With no PATH, the configured files under --root are checked. A directory PATH means its *.yaml files. \
            With --as NAME, the one FILE is judged as if installed as /etc/mirror-agent/NAME (mirrors.d/NAME.yaml or \
            mirrors.yaml), merged with every file already in place (an installed file of that name is replaced), \
            and the files it would change are listed: for Ansible's validate: (mirror-agent validate --as mirrors.d/50-team.yaml %s).
            """
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print a JSON report for fleet tooling.")
    var json = false
    @Option(name: .customLong("as"), help: ArgumentHelp("Judge FILE as if installed under this name, with everything in place.", valueName: "mirrors.d/NAME.yaml"))
    var installName: String?
    @Flag(name: .long, help: "With --as: show a unified diff of each rendered file that would change.")
    var diff = false
    @Argument(help: "Desired-state files or directories (default: the configured files).")
    var paths: [String] = []

    func validate() throws {
        if installName != nil && paths.count != 1 { throw ValidationError("--as takes exactly one FILE") }
        if let installName, DesiredStateLoader.InstallName.hostPath(installName) == nil {
            throw ValidationError("--as \(installName): the agent reads only mirrors.yaml and mirrors.d/*.yaml (or .yml), not hidden or backup names")
        }
        if diff && installName == nil { throw ValidationError("--diff needs --as") }
    }

    func run() throws {
        if let installName { return try runInPlace(installName) }
        let root = common.hostRoot
        let (settings, settingsDiagnostics) = AgentSettings.load(root: root)
        let files = paths.isEmpty ? DesiredStateLoader.configuredFiles(root: root).map(root.path) : expand(paths)
        var result = DesiredStateLoader.load(paths: files, root: root, settings: settings)
        result.diagnostics.append(contentsOf: settingsDiagnostics)
        if json {
            printJSON(ValidationReport(result))
        } else {
            for diagnostic in result.diagnostics.sorted { print(diagnostic) }
            let counts = "\(files.count) file\(files.count == 1 ? "" : "s")"
            if result.isValid {
                let warnings = result.diagnostics.warnings.count
                print("valid: \(counts), \(result.model.registries.count) registries, \(result.model.mirrorCount) mirrors\(warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : "")")
            } else {
                print("invalid: \(result.diagnostics.errors.count) error\(result.diagnostics.errors.count == 1 ? "" : "s") in \(counts)")
            }
        }
        if !result.isValid { throw ExitCode(ExitStatus.invalidInput) }
    }

    /// FILE as /etc/mirror-agent/NAME, merged with what is installed; nothing is written.
    private func runInPlace(_ installName: String) throws {
        let root = common.hostRoot
        let target = DesiredStateLoader.InstallName.hostPath(installName)!
        let candidate = paths[0]
        let installed = DesiredStateLoader.configuredFiles(root: root)
        let files = DesiredStateLoader.files(installing: candidate, as: target, among: installed, root: root)
        let (settings, settingsDiagnostics) = AgentSettings.load(root: root)
        var result = Reconciliation(root: root, settings: settings, desiredPaths: files, dryRun: true).run()
        // The fragment's effect on the rendered files only: a config.toml fix the runtime needs
        // anyway (and whether it would verify) is `mirror-agent check`'s business.
        result.diagnostics = DiagnosticList(result.diagnostics.items.filter { !$0.message.hasPrefix("the config.toml fix was not applied") })
        result.diagnostics.append(contentsOf: settingsDiagnostics)
        let valid = !result.diagnostics.hasErrors
        let changes = valid ? result.outcome.changes : []
        if json {
            printJSON(InPlaceValidationReport(result: result, candidate: candidate, installedAs: root.path(target), changes: changes, root: root))
        } else {
            let others = files.count - 1
            print("\(candidate) as \(root.path(target)), with \(others) installed file\(others == 1 ? "" : "s"):")
            for diagnostic in result.diagnostics.sorted { print(diagnostic) }
            if valid {
                for change in changes {
                    print("would be \(change.kind.rawValue): \(root.path(change.path))")
                    if diff {
                        if change.secret {
                    print("(the contents of \(root.path(change.path)) are not shown: it holds a secret)")
                } else {
                    print(unifiedDiff(old: change.before ?? "", new: change.after ?? "", oldName: change.before == nil ? "/dev/null" : root.path(change.path), newName: change.after == nil ? "/dev/null" : root.path(change.path)), terminator: "")
                }
                    }
                }
                print("valid: \(result.model.registries.count) registries, \(result.model.mirrorCount) mirrors; \(changes.isEmpty ? "no rendered file would change" : "\(changes.count) rendered file\(changes.count == 1 ? "" : "s") would change")")
            } else {
                let count = result.diagnostics.errors.count
                print("invalid: \(count) error\(count == 1 ? "" : "s") with \(candidate) installed as \(root.path(target))")
            }
        }
        if !valid { throw ExitCode(ExitStatus.invalidInput) }
    }

    private func expand(_ paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            guard FileSystem.isDirectory(path) else { return [path] }
            let names = (FileSystem.list(path) ?? []).filter(DesiredStateLoader.isDesiredStateName)
            return names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).map { path + "/" + $0 }
        }
    }
}

/// `validate --as --json`: the verdict in place, and what would change.
struct InPlaceValidationReport: Encodable {
    struct Change: Encodable {
        var path: String
        var kind: String
    }

    var valid: Bool
    var file: String
    var installedAs: String
    var files: [String]
    var registries: [RegistryJSON]
    var errors: [DiagnosticJSON]
    var warnings: [DiagnosticJSON]
    var changed: Bool
    var changes: [Change]

    init(result: Reconciliation.Result, candidate: String, installedAs: String, changes: [ManagedFiles.Outcome.Change], root: HostRoot) {
        valid = !result.diagnostics.hasErrors
        file = candidate
        self.installedAs = installedAs
        files = result.files
        registries = valid ? result.model.registries.map(RegistryJSON.init) : []
        errors = result.diagnostics.sorted.filter { $0.severity == .error }.map(DiagnosticJSON.init)
        warnings = result.diagnostics.sorted.filter { $0.severity == .warning }.map(DiagnosticJSON.init)
        changed = !changes.isEmpty
        self.changes = changes.map { Change(path: root.path($0.path), kind: $0.kind.rawValue) }
    }
}
