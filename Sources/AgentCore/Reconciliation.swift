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

#if canImport(Glibc)
import Glibc
#endif

/// One pass from desired-state files to runtimes in force, shared by `apply` and the daemon:
/// load, check containerd's prerequisites, render, write, fix config.toml, then (now or later)
/// restart or reload the runtimes whose configuration needs it.
public struct Reconciliation {
    public var root: HostRoot
    public var settings: AgentSettings
    public var desiredPaths: [String] = []
    public var dryRun = false
    /// Probe URLs declared down; with `probe.onUnhealthy: demote` their mirrors are left out.
    public var down: Set<String> = []

    public init(root: HostRoot, settings: AgentSettings, desiredPaths: [String] = [], dryRun: Bool = false, down: Set<String> = []) {
        self.root = root
        self.settings = settings
        self.desiredPaths = desiredPaths
        self.dryRun = dryRun
        self.down = down
    }

    /// A runtime action that the files just written call for.
    public enum PendingAction: Sendable, Equatable {
        /// config.toml changed; `originals` restore it if containerd does not come back.
        case restartContainerd(originals: [ConfigOriginal])
        /// The CRI-O drop-in changed.
        case reloadCRIO
    }

    public typealias ConfigOriginal = PendingActionsRecord.ConfigOriginal

    public struct Result {
        public init() {}
        public var diagnostics = DiagnosticList()
        public var files: [String] = []
        /// The desired model (what is probed), before any health-aware demotion.
        public var model = MirrorModel()
        public var plan = Reconciler.Plan()
        public var outcome = ManagedFiles.Outcome()
        public var prerequisites: ContainerdPrerequisites?
        public var configChanges: [ManagedFiles.Outcome.Change] = []
        public var pending: [PendingAction] = []
        public var actions: [RuntimeActionReport] = []
        public var notes: [String] = []
        /// What could not be written, per runtime (the other runtimes' files are in force).
        public var runtimeFailures: [Runtime: [String]] = [:]
        /// Probe endpoint ids left out of the rendered files (`probe.onUnhealthy: demote`).
        public var demoted: Set<String> = []
        public var invalid: Bool { diagnostics.hasErrors }
        public var failed: Bool { !outcome.failures.isEmpty || actions.contains { $0.result == .failed || $0.result == .rolledBack } }
    }

    public func run() -> Result {
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
        // Registry credentials go into containerd's configuration: judge it again with them.
        if !loaded.model.credentials.isEmpty, result.prerequisites != nil {
            do {
                result.prerequisites = try ContainerdPrerequisites.inspect(
                    configFile: settings.containerd.configFile, root: root, containerdVersion: version,
                    preferredHostsDirectory: settings.containerd.hostsDir, credentials: loaded.model.credentials)
            } catch {
                result.diagnostics.warning("cannot check containerd's configuration: \(error.message); config.toml is left alone", at: error.location)
            }
        }

        var rendered = loaded.model
        if settings.probe.onUnhealthy == .demote {
            let demotion = HealthFilter.demote(loaded.model, down: down)
            rendered = demotion.model
            result.notes += demotion.notes
            result.demoted = demotion.demoted
        }
        let reconciler = Reconciler(root: root, settings: settings, containerdFeatures: ContainerdFeatures(version: version))
        result.plan = reconciler.plan(rendered, containerdHostsDirectory: result.prerequisites?.hostsDirectory)
        // Every runtime's files in one batch: written, made durable together, renamed, each
        // directory synced once (so CRI-O's drop-in does not wait for containerd's directory
        // sync). A runtime whose files cannot be written (say /etc/containers on a read-only
        // /etc) still does not keep the other's out of force: the writer fails file by file,
        // and the outcome says which runtime each failure belongs to.
        let managed = ManagedFiles(root: root, stateDirectory: settings.stateDir, adopt: settings.adopt)
        var applied = Set(result.plan.runtimes)
        if applied.contains(.crio) && !dryRun {
            // The reload is recorded before the drop-in changes, so no kill can lose it.
            let preview = managed.apply(result.plan.files.filter { $0.runtime == .crio }, runtimes: [.crio], dryRun: true)
            // certs.d and the auth file are read by containers/image at each pull: no action.
            // The registries drop-in needs a reload; the crio.conf drop-in a restart.
            var problem: String?
            if preview.changes.contains(where: { $0.path == settings.crio.dropIn }) {
                problem = recordPending(crioReload: .init(reason: "the CRI-O drop-in changed", decidedAt: Journal.realtimeMicroseconds()))
            }
            if problem == nil, preview.changes.contains(where: { $0.path == CRIOAuthRenderer.crioDropIn }) {
                problem = updatePending { $0.addCRIORestart(.init(reason: "global_auth_file in \(CRIOAuthRenderer.crioDropIn) changed", decidedAt: Journal.realtimeMicroseconds())) }
                    .last { $0.hasPrefix("cannot record") }
            }
            if let problem {
                result.outcome.failures.append(problem)
                result.runtimeFailures[.crio, default: []].append(problem)
                applied.remove(.crio)
            }
        }
        if result.plan.runtimes.isEmpty || !applied.isEmpty {
            let files = result.plan.runtimes.isEmpty ? result.plan.files : result.plan.files.filter { applied.contains($0.runtime) }
            let outcome = managed.apply(files, runtimes: applied, dryRun: dryRun)
            result.outcome.changes += outcome.changes
            result.outcome.unchanged += outcome.unchanged
            result.outcome.warnings += outcome.warnings.filter { !result.outcome.warnings.contains($0) }
            result.outcome.failures += outcome.failures
            result.outcome.failureCodes.merge(outcome.failureCodes) { first, _ in first }
            result.runtimeFailures.merge(outcome.runtimeFailures) { $0 + $1 }
        }
        if result.outcome.changes.contains(where: { $0.runtime == .containerd }) {
            result.notes.append("hosts.toml changes take effect on the next pull; containerd needs no restart for them")
        }
        if result.outcome.changes.contains(where: { $0.path == settings.crio.dropIn || $0.path == CRIOAuthRenderer.crioDropIn }) && !dryRun {
            result.pending.append(.reloadCRIO)
        }
        if result.outcome.changes.contains(where: { $0.runtime == .crio && $0.path != settings.crio.dropIn && $0.path != CRIOAuthRenderer.crioDropIn }) {
            result.notes.append("certs.d and auth file changes take effect on the next pull; CRI-O needs no reload for them")
        }

        // Then config.toml, once the hosts files it will point at are in place.
        if let prerequisites = result.prerequisites, prerequisites.needsFix, result.runtimeFailures[.containerd] == nil {
            if !settings.containerd.fixConfig {
                result.notes.append("containerd's config.toml needs a fix (see mirror-agent check); containerd.fixConfig is false, so it is left alone")
            } else if let originals = fixConfig(prerequisites, into: &result) {
                // Only a change of what containerd reads calls for a restart (not a mode change).
                // (A mode-only fix records no restart either: see fixConfig.)
                if prerequisites.fixes.contains(where: \.needsRestart) || settings.testing.breakContainerdStart {
                    result.pending.append(.restartContainerd(originals: originals))
                }
            }
        }
        // Actions an earlier run decided and did not carry out (killed, restarted, policy) are
        // still due: this pass carries them out too.
        if !dryRun {
            let (record, _) = loadPending()
            if let restart = record.containerdRestart, !result.pending.contains(where: { if case .restartContainerd = $0 { true } else { false } }) {
                result.pending.append(.restartContainerd(originals: restart.originals))
                result.notes.append("a containerd restart decided earlier is still pending (\(restart.reason))")
            }
            if record.crioReload != nil || record.crioRestart != nil, !result.pending.contains(.reloadCRIO) {
                result.pending.append(.reloadCRIO)
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
            if let problem = verify(fix, prerequisites, credentials: result.model.credentials) {
                // A failure to act (exit 1, STATUS says so), not invalid desired state: the
                // hosts.toml files above are in place; only the config.toml fix is held back.
                result.outcome.failures.append("\(root.path(fix.hostPath)): the config.toml fix was not applied: \(problem)")
                return nil
            }
        }
        var originals: [ConfigOriginal] = []
        let writer = AtomicWriter(root: root)
        let stamp = ManagedFiles.backupStamp()
        var modes: [String: UInt32] = [:]
        for fix in fixes {
            let (directory, name) = AtomicWriter.split(hostPath: fix.hostPath)
            if case .file(_, let existingMode)? = try? writer.existing(base: directory, relative: name) { modes[fix.hostPath] = existingMode }
        }
        let hadPendingRestart = loadPending().0.containerdRestart != nil
        if !dryRun {
            // The restart (and what to restore if containerd does not come back) is recorded
            // durably before config.toml changes: no kill or restart of the agent can lose it.
            let action = PendingActionsRecord.Action(
                reason: "config.toml fixed (\(fixes.flatMap(\.changes).joined(separator: "; ")))", decidedAt: Journal.realtimeMicroseconds(),
                originals: fixes.map { ConfigOriginal(hostPath: $0.hostPath, contents: $0.before, mode: modes[$0.hostPath] ?? 0o644) })
            if fixes.contains(where: \.needsRestart) || settings.testing.breakContainerdStart, let problem = recordPending(containerdRestart: action) {
                result.outcome.failures.append("\(root.path(settings.containerd.configFile)): fix not applied: \(problem)")
                result.runtimeFailures[.containerd, default: []].append(problem)
                return nil
            }
        }
        defer {
            // Nothing was written after all: no restart is called for by this pass.
            if !dryRun && originals.isEmpty && !hadPendingRestart { updatePending { $0.containerdRestart = nil } }
        }
        for fix in fixes {
            let (directory, name) = AtomicWriter.split(hostPath: fix.hostPath)
            let mode = fix.mode ?? modes[fix.hostPath] ?? 0o644
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
                originals.append(ConfigOriginal(hostPath: fix.hostPath, contents: fix.before, mode: modes[fix.hostPath] ?? mode))
            } catch {
                result.outcome.failures.append(error.description)
                result.runtimeFailures[.containerd, default: []].append(error.description)
                return originals.isEmpty ? nil : originals
            }
        }
        return dryRun ? nil : originals
    }

    private func verify(_ fix: ContainerdPrerequisites.ConfigFix, _ before: ContainerdPrerequisites, credentials: [HostCredentials]) -> String? {
        let candidate: ContainerdConfigFiles
        do {
            candidate = try ContainerdConfigFiles.parse(fix.after, hostPath: fix.hostPath)
        } catch {
            return "the patched file does not parse: \(error.message)"
        }
        if fix.hostPath == settings.containerd.configFile {
            let again = ContainerdPrerequisites.evaluateCandidate(
                candidate, configFile: fix.hostPath, root: root, containerdVersion: before.containerdVersion, containerdMajor: before.containerdMajor,
                credentials: credentials)
            if let broken = again.first(where: { $0.status == .missing || $0.status == .wrong }) {
                return "after patching, \(broken.name) is still \(broken.status.rawValue)"
            }
            // containerd's own reading of the candidate, where containerd runs on this root.
            if root == .system, let dump = RuntimeDetection.containerdConfigDump(candidate: fix.after) {
                if !dump.succeeded { return "containerd rejects it: \(Quote.redactSecretAssignments(String(dump.errors.suffix(300))))" }
                let parsed: ContainerdConfigDump
                do {
                    parsed = try ContainerdConfigDump.parse(dump.output)
                } catch {
                    return error.message
                }
                if let problem = parsed.problem(hostsDirectory: before.hostsDirectory, containerd: ContainerdVersion(before.containerdVersion)) {
                    return problem
                }
            }
        }
        return nil
    }

    /// Carries out restarts and reloads (now, for `apply`; when debounced, on the daemon's
    /// worker thread). `shouldStop` is asked before each action: once it says yes (the agent is
    /// stopping), the actions not started yet stay pending in the record.
    public func perform(_ pending: [PendingAction], shouldStop: () -> Bool = { false }) -> ([RuntimeActionReport], [String]) {
        guard !pending.isEmpty else { return ([], []) }
        var reports: [RuntimeActionReport] = []
        func skipped(_ why: String) -> ([RuntimeActionReport], [String]) {
            (pending.map { action in
                switch action {
                case .restartContainerd: return RuntimeActionReport(unit: "containerd.service", action: "restart", result: .pending, message: "restart pending: \(why)")
                case .reloadCRIO:
                    if loadPending().0.crioRestart != nil {
                        return RuntimeActionReport(unit: "crio.service", action: "restart", result: .pending, message: "restart pending (global_auth_file changed): \(why)")
                    }
                    return RuntimeActionReport(unit: "crio.service", action: "reload", result: .pending, message: "reload pending: \(why)")
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
        var problems: [String] = []
        for action in pending {
            if shouldStop() {
                let why = "not started: the agent is stopping; carried out when it starts again"
                switch action {
                case .restartContainerd: reports.append(RuntimeActionReport(unit: "containerd.service", action: "restart", result: .pending, message: "restart pending: \(why)"))
                case .reloadCRIO: reports.append(RuntimeActionReport(unit: "crio.service", action: "reload", result: .pending, message: "reload pending: \(why)"))
                }
                continue
            }
            switch action {
            case .restartContainerd(let originals):
                if let decided = loadPending().0.containerdRestart?.decidedAt,
                    let state = try? bus.activeState("containerd.service"), let mainStarted = try? bus.execMainStartTimestamp("containerd.service"),
                    !StaleRuntime.restartStillNeeded(activeState: state, mainStartedAt: mainStarted, decidedAt: decided)
                {
                    reports.append(
                        RuntimeActionReport(
                            unit: "containerd.service", action: "restart", result: .done,
                            message: state == "active" || state == "reloading"
                                ? "containerd.service was restarted since the change was decided; it runs with the new configuration, no restart needed"
                                : "containerd.service is \(state) (stopped); it reads the new configuration when it starts, no restart needed",
                            activeState: state))
                    problems += updatePending { $0.containerdRestart = nil }
                    continue
                }
                let restart = ContainerdRestart(jobTimeout: settings.restart.jobTimeout)
                let started = Journal.realtimeMicroseconds()
                reports.append(
                    restart.run(
                        on: bus,
                        rollback: {
                            originals.isEmpty ? "nothing to restore: the change to config.toml was not the agent's" : restore(originals)
                        }, stopping: shouldStop))
                // The outcome is known (restarted, rolled back or failed loudly): the record
                // goes, and the time of this restart stays for the rate limit.
                problems += updatePending { record in
                    record.containerdRestart = nil
                    record.lastContainerdRestart = started
                }
            case .reloadCRIO:
                if (try? bus.loadState("crio.service")) != "loaded" {
                    reports.append(RuntimeActionReport(unit: "crio.service", action: "reload", result: .pending, message: "crio.service is not installed; nothing to reload"))
                } else if let restart = loadPending().0.crioRestart {
                    // global_auth_file is read only when CRI-O starts (server/server.go), and a
                    // restart also rereads the registries: one action covers both.
                    var crio = ContainerdRestart(unit: "crio.service", jobTimeout: settings.restart.jobTimeout)
                    crio.configName = "CRI-O configuration"
                    var report = crio.run(on: bus, rollback: { "nothing to restore: \(restart.reason), which CRI-O needs" })
                    report.message = "\(restart.reason): " + report.message
                    reports.append(report)
                } else {
                    let (decision, settingProblems) = crioReloadDecision(bus: bus)
                    var report: RuntimeActionReport
                    switch decision {
                    case .selfReloads(let why):
                        report = RuntimeActionReport(unit: "crio.service", action: "none", result: .done, message: why)
                    case .reload(let note):
                        report = CRIOReload(jobTimeout: settings.restart.jobTimeout).run(on: bus)
                        if let note { report.message = note + ": " + report.message }
                    }
                    if !settingProblems.isEmpty { report.message += " (CRI-O settings: \(settingProblems.joined(separator: "; ")))" }
                    reports.append(report)
                }
                // Not installed: CRI-O reads the drop-in when it starts, so nothing stays pending.
                problems += updatePending {
                    $0.crioReload = nil
                    $0.crioRestart = nil
                }
            }
        }
        return (reports, problems)
    }

    /// Whether CRI-O picks up the drop-in itself (`auto_reload_registries`), from its settings
    /// under the root, `crio --version` and when crio.service started.
    public func crioReloadDecision(bus: SystemdBus) -> (CRIOReloadDecision, problems: [String]) {
        let crio = CRIOSettings.load(root: root)
        var settingChangedAt: UInt64?
        if let file = crio.autoReloadSetIn {
            var info = stat()
            if stat(file, &info) == 0 {
                settingChangedAt = UInt64(max(0, info.st_mtim.tv_sec)) * 1_000_000 + UInt64(max(0, info.st_mtim.tv_nsec)) / 1000
            }
        }
        let decision = CRIOReloadDecision.decide(
            settings: crio, dropInPath: settings.crio.dropIn,
            version: crio.autoReloadRegistries ? RuntimeDetection.crioVersion(root: root) : nil,
            settingChangedAt: settingChangedAt, crioStartedAt: try? bus.execMainStartTimestamp("crio.service"))
        return (decision, crio.problems)
    }

    // MARK: - Configuration errors

    /// The CRI-O drop-in's directory tree does not exist and cannot be created because the
    /// file system is read-only to the agent: the case of explicit `crio` on a host without
    /// /etc/containers, where mirror-agent.service (ProtectSystem=strict) may write only to
    /// directories that existed when it started. Retrying cannot help; it is a configuration
    /// error, said once, and the other runtime's files stay in force.
    /// `code` is the failure's errno where known (EROFS here; ENOSPC or EACCES are retried).
    public func crioConfigurationError(_ failure: String, code: Int32? = nil) -> String? {
        let dropInDirectory = AtomicWriter.split(hostPath: settings.crio.dropIn).directory
        let top = AtomicWriter.split(hostPath: dropInDirectory).directory
        let cannotCreate = "\(root.path(top)): cannot create directory: "
        guard failure.hasPrefix(cannotCreate), code.map({ $0 == EROFS }) ?? (failure == cannotCreate + String(cString: strerror(EROFS))) else { return nil }
        return "crio is in runtimes, but \(root.path(top)) does not exist and is read-only to mirror-agent (its unit, with ProtectSystem=strict, may write only to directories that existed when it started), so \(root.path(settings.crio.dropIn)) cannot be written: create the directory (mkdir -p \(root.path(dropInDirectory))) and restart mirror-agent, or leave crio out of runtimes in agent.yaml"
    }

    // MARK: - The durable record of pending actions

    public var pendingRecordPath: String { settings.stateDir + "/" + PendingActionsRecord.fileName }

    /// The record in the state directory; an unreadable one is reported and read as empty (the
    /// stale-runtime check still finds a containerd restart it lost).
    public func loadPending() -> (PendingActionsRecord, String?) {
        let path = root.path(pendingRecordPath)
        switch FileSystem.read(path, limit: 64 << 20) {
        case .failure(.missing): return (PendingActionsRecord(), nil)
        case .failure(let error): return (PendingActionsRecord(), "cannot read \(path): \(error)")
        case .success(let bytes):
            if let record = try? JSONDecoder().decode(PendingActionsRecord.self, from: Data(bytes)) { return (record, nil) }
            return (PendingActionsRecord(), "\(path) is unreadable; pending runtime actions in it are lost")
        }
    }

    /// The lock around read-modify-write of the record: the daemon and `apply` both update it.
    var pendingLockPath: String { pendingRecordPath + ".lock" }

    /// Read, change, write back atomically and synced (tmp, fsync, rename, fsync of the
    /// directory), holding an exclusive lock on the record's lock file so that the daemon and
    /// `apply` never lose each other's update. Waits at most 5 s for the lock, then reports that
    /// nothing was recorded. Returns the problems; nothing is written with `dryRun`.
    @discardableResult
    public func updatePending(_ change: (inout PendingActionsRecord) -> Void) -> [String] {
        guard !dryRun else { return [] }
        do {
            return try FileLock.withExclusive(root.path(pendingLockPath)) { updatePendingLocked(change) }
        } catch {
            return ["cannot record pending runtime actions in \(root.path(pendingRecordPath)): \(error)"]
        }
    }

    private func updatePendingLocked(_ change: (inout PendingActionsRecord) -> Void) -> [String] {
        var (record, problem) = loadPending()
        let before = record
        change(&record)
        if record == before && problem == nil { return [] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(record)
            data.append(0x0A)
            try AtomicWriter(root: root).write(Array(data), hostPath: pendingRecordPath, mode: 0o600)
        } catch {
            return (problem.map { [$0] } ?? []) + ["cannot record pending runtime actions in \(root.path(pendingRecordPath)): \(error)"]
        }
        return problem.map { [$0] } ?? []
    }

    private func recordPending(containerdRestart action: PendingActionsRecord.Action) -> String? {
        updatePending { $0.addContainerdRestart(action) }.last { $0.hasPrefix("cannot record") }
    }

    private func recordPending(crioReload action: PendingActionsRecord.Action) -> String? {
        updatePending { $0.addCRIOReload(action) }.last { $0.hasPrefix("cannot record") }
    }

    // MARK: - Stale runtime

    /// containerd runs with an older configuration than its files say: its main process started
    /// before the last change (mtime or ctime) of config.toml or one of its imports. Read over
    /// D-Bus (`ExecMainStartTimestamp`), so only for this host's root with systemd; nil when
    /// containerd is up to date or nothing can be said.
    public func staleContainerd(bus: SystemdBus? = nil) -> StaleRuntime.FileChange? {
        guard root == .system, settings.selectedRuntimes(root: root).contains(.containerd) else { return nil }
        guard let bus = bus ?? (try? SystemdBus.connect()) else { return nil }
        guard let state = try? bus.activeState("containerd.service"), let started = try? bus.execMainStartTimestamp("containerd.service") else { return nil }
        var paths = [settings.containerd.configFile]
        if let loaded = try? ContainerdConfigFiles.load(settings.containerd.configFile, root: root) {
            paths = loaded.files.map(\.hostPath)
        }
        let changes = paths.compactMap { path -> StaleRuntime.FileChange? in
            var info = stat()
            guard stat(root.path(path), &info) == 0 else { return nil }
            let micros = { (t: timespec) in UInt64(max(0, t.tv_sec)) * 1_000_000 + UInt64(max(0, t.tv_nsec)) / 1000 }
            return StaleRuntime.FileChange(path: root.path(path), changedAt: max(micros(info.st_mtim), micros(info.st_ctim)))
        }
        return StaleRuntime.newerChange(activeState: state, mainStartedAt: started, files: changes, now: Journal.realtimeMicroseconds())
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
