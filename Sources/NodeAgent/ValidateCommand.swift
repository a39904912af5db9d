import ArgumentParser
import DesiredState
import Diagnostics

/// `mirror-agent validate [PATH...]`: every problem in the desired state, nothing written.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check desired-state files and agent.yaml; exit 0 when valid, 2 when not.",
        discussion: "With no PATH, the configured files under --root are checked. A directory PATH means its *.yaml files."
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print a JSON report for fleet tooling.")
    var json = false
    @Argument(help: "Desired-state files or directories (default: the configured files).")
    var paths: [String] = []

    func run() throws {
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

    private func expand(_ paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            guard FileSystem.isDirectory(path) else { return [path] }
            let names = (FileSystem.list(path) ?? []).filter(DesiredStateLoader.isDesiredStateName)
            return names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).map { path + "/" + $0 }
        }
    }
}
