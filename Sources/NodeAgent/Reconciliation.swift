import DesiredState
import Diagnostics
import Foundation
import HealthProbe
import RuntimeActions
import RuntimeWriters

/// One pass from desired-state files to runtimes in force, shared by `apply` and the daemon:
/// load, check containerd's prerequisites, render, write, fix config.toml, then (now or later)
/// restart or reload the runtimes whose configuration needs it.
struct Reconciliation {
    var root: HostRoot
    var settings: AgentSettings
    var desiredPaths: [String] = []
    var dryRun = false
    /// Probe URLs declared down; with `probe.onUnhealthy: demote` their mirrors are left out.
    var down: Set<String> = []

    /// A runtime action that the files just written call for.
    enum PendingAction: Sendable, Equatable {
        /// config.toml changed; `originals` restore it if containerd does not come back.
        case restartContainerd(originals: [ConfigOriginal])
        /// The CRI-O drop-in changed.
        case reloadCRIO
    }

    struct ConfigOriginal: Sendable, Equatable {
        var hostPath: String
        var contents: String?
        var mode: UInt32
    }

    struct Result {
        var diagnostics = DiagnosticList()
        var files: [String] = []
        /// The desired model (what is probed), before any health-aware demotion.
        var model = MirrorModel()
        var plan = Reconciler.Plan()
        var outcome = ManagedFiles.Outcome()
        var prerequisites: ContainerdPrerequisites?
        var configChanges: [ManagedFiles.Outcome.Change] = []
        var pending: [PendingAction] = []
        var actions: [RuntimeActionReport] = []
        var notes: [String] = []
        /// Probe endpoint ids left out of the rendered files (`probe.onUnhealthy: demote`).
        var demoted: Set<String> = []
        var invalid: Bool { diagnostics.hasErrors }
        var failed: Bool { !outcome.failures.isEmpty || actions.contains { $0.result == .failed || $0.result == .rolledBack } }
    }

    func run() -> Result {
        var result = Result()
        let runtimes = settings.selectedRuntimes(root: root)

        // containerd's configuration first: its config_path decides where hosts.toml goes, and
        // deprecated mirrors in it join the model.
        var version: String?
        if runtimes.contains(.containerd) {
            version = RuntimeDetection.containerdVersion(root: root)
            do {
                result.prerequisites = try ContainerdPrerequisites.inspect(
                    configFile: settings.containerd.configFile, root: root, containerdVersion: version,
                    preferredHostsDirectory: settings.containerd.hostsDir)
            } catch {
                result.diagnostics.warning("cannot check containerd's configuration: \(error.message); config.toml is left alone", at: error.location)
            }
        }
        let legacy = settings.containerd.fixConfig ? result.prerequisites?.legacyMirrors ?? [] : []
        let loaded =
            desiredPaths.isEmpty
            ? DesiredStateLoader.load(root: root, settings: settings, legacy: legacy)
            : DesiredStateLoader.load(paths: desiredPaths, root: root, settings: settings, legacy: legacy)
        result.diagnostics.append(contentsOf: loaded.diagnostics)
        result.files = loaded.files
        guard !result.invalid else { return result }
        result.model = loaded.model

        var rendered = loaded.model
        if settings.probe.onUnhealthy == .demote {
            let demotion = HealthFilter.demote(loaded.model, down: down)
            rendered = demotion.model
            result.notes += demotion.notes
            result.demoted = demotion.demoted
        }
        let reconciler = Reconciler(root: root, settings: settings, containerdFeatures: ContainerdFeatures(version: version))
        result.plan = reconciler.plan(rendered, containerdHostsDirectory: result.prerequisites?.hostsDirectory)
        result.outcome = reconciler.apply(result.plan, dryRun: dryRun)
        if result.outcome.changes.contains(where: { $0.runtime == .containerd }) {
            result.notes.append("hosts.toml changes take effect on the next pull; containerd needs no restart for them")
        }
        if result.outcome.changes.contains(where: { $0.runtime == .crio }) && !dryRun {
            result.pending.append(.reloadCRIO)
        }

        // Then config.toml, once the hosts files it will point at are in place.
        if let prerequisites = result.prerequisites, prerequisites.needsFix, result.outcome.failures.isEmpty {
            if !settings.containerd.fixConfig {
                result.notes.append("containerd's config.toml needs a fix (see mirror-agent check); containerd.fixConfig is false, so it is left alone")
            } else if let originals = fixConfig(prerequisites, into: &result) {
                result.pending.append(.restartContainerd(originals: originals))
            }
        }
        return result
    }

    /// Verifies and writes the config.toml fixes; returns what to restore on a failed restart.
    private func fixConfig(_ prerequisites: ContainerdPrerequisites, into result: inout Result) -> [ConfigOriginal]? {
        var fixes = prerequisites.fixes
        if settings.testing.breakContainerdStart, !fixes.isEmpty {
            var editor = TOMLEditorAccess(fixes[0].after)
            editor.setRoot("root", "\"/proc/mirror-agent-test-broken\"")
            fixes[0].after = editor.text
            fixes[0].changes.append("testing.breakContainerdStart: root pointed at an impossible place")
        }
        // Check every candidate with the real parser (and containerd itself where it runs).
        for fix in fixes {
            if let problem = verify(fix, prerequisites) {
                result.diagnostics.append(.error("the config.toml fix was not applied: \(problem)", at: .file(root.path(fix.hostPath))))
                result.outcome.failures.append("\(root.path(fix.hostPath)): fix not applied: \(problem)")
                return nil
            }
        }
        var originals: [ConfigOriginal] = []
        let writer = AtomicWriter(root: root)
        let stamp = ManagedFiles.backupStamp()
        for fix in fixes {
            let (directory, name) = AtomicWriter.split(hostPath: fix.hostPath)
            var mode: UInt32 = 0o644
            if case .file(_, let existingMode)? = try? writer.existing(base: directory, relative: name) { mode = existingMode }
            let change = ManagedFiles.Outcome.Change(
                path: fix.hostPath, kind: fix.before == nil ? .created : .updated, runtime: .containerd, before: fix.before, after: fix.after,
                backup: fix.before == nil ? nil : ManagedFiles.backupPath(for: fix.hostPath, stateDirectory: settings.stateDir, stamp: stamp))
            result.configChanges.append(change)
            if dryRun { continue }
            do {
                if let before = fix.before, let backup = change.backup {
                    try writer.write(Array(before.utf8), hostPath: backup, mode: 0o600)
                }
                try writer.write(Array(fix.after.utf8), base: directory, relative: name, mode: mode)
                originals.append(ConfigOriginal(hostPath: fix.hostPath, contents: fix.before, mode: mode))
            } catch let error as AtomicWriter.WriteError {
                result.outcome.failures.append(error.description)
                return originals.isEmpty ? nil : originals
            } catch {
                result.outcome.failures.append("\(error)")
                return originals.isEmpty ? nil : originals
            }
        }
        return dryRun ? nil : originals
    }

    private func verify(_ fix: ContainerdPrerequisites.ConfigFix, _ before: ContainerdPrerequisites) -> String? {
        let candidate: ContainerdConfigFiles
        do {
            candidate = try ContainerdConfigFiles.parse(fix.after, hostPath: fix.hostPath)
        } catch {
            return "the patched file does not parse: \(error.message)"
        }
        if fix.hostPath == settings.containerd.configFile {
            let again = ContainerdPrerequisites.evaluateCandidate(candidate, configFile: fix.hostPath, root: root, containerdMajor: before.containerdMajor)
            if let broken = again.first(where: { $0.status == .missing || $0.status == .wrong }) {
                return "after patching, \(broken.name) is still \(broken.status.rawValue)"
            }
            // containerd's own reading of the candidate, where containerd runs on this root.
            if root == .system, let dump = RuntimeDetection.containerdConfigDump(candidate: fix.after) {
                if !dump.succeeded { return "containerd rejects it: \(dump.output.suffix(300))" }
                if !dump.output.contains("config_path = \"\(before.hostsDirectory)\"") {
                    return "containerd config dump does not show config_path = \"\(before.hostsDirectory)\""
                }
            }
        }
        return nil
    }

    /// Carries out restarts and reloads (now, for `apply`; when debounced, for the daemon).
    func perform(_ pending: [PendingAction]) -> ([RuntimeActionReport], [String]) {
        guard !pending.isEmpty else { return ([], []) }
        var reports: [RuntimeActionReport] = []
        func skipped(_ why: String) -> ([RuntimeActionReport], [String]) {
            (pending.map { action in
                switch action {
                case .restartContainerd: return RuntimeActionReport(unit: "containerd.service", action: "restart", result: .pending, message: "restart pending: \(why)")
                case .reloadCRIO: return RuntimeActionReport(unit: "crio.service", action: "reload", result: .pending, message: "reload pending: \(why)")
                }
            }, [])
        }
        if settings.restart.policy == .never { return skipped("restart policy is never") }
        if root != .system { return skipped("--root is \(root), not this host's /") }
        let bus: SystemdBus
        do {
            bus = try SystemdBus.connect()
        } catch {
            return skipped(error.message)
        }
        for action in pending {
            switch action {
            case .restartContainerd(let originals):
                let restart = ContainerdRestart(jobTimeout: settings.restart.jobTimeout)
                reports.append(restart.run(on: bus, rollback: { restore(originals) }))
            case .reloadCRIO:
                if (try? bus.loadState("crio.service")) != "loaded" {
                    reports.append(RuntimeActionReport(unit: "crio.service", action: "reload", result: .pending, message: "crio.service is not installed; nothing to reload"))
                    continue
                }
                reports.append(CRIOReload(jobTimeout: settings.restart.jobTimeout).run(on: bus))
            }
        }
        return (reports, [])
    }

    /// Puts the previous config files back; returns a problem, or nil.
    private func restore(_ originals: [ConfigOriginal]) -> String? {
        let writer = AtomicWriter(root: root)
        for original in originals {
            let (directory, name) = AtomicWriter.split(hostPath: original.hostPath)
            do {
                if let contents = original.contents {
                    try writer.write(Array(contents.utf8), base: directory, relative: name, mode: original.mode)
                } else {
                    try writer.remove(base: directory, relative: name, directories: [])
                }
            } catch {
                return error.description
            }
        }
        return nil
    }

}
