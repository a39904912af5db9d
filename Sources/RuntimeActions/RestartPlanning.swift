/// The pure decisions around runtime restarts and retries: no clock, no files, no bus. The
/// daemon feeds them timestamps and carries out what they say; unit tests feed them tables.

/// When a pass that could not put everything in force is tried again: 1 s after the first
/// failure, doubling, at most a minute apart (1, 2, 4, 8, 16, 32, 60, 60, ...).
public struct RetrySchedule: Sendable, Equatable {
    public var first: Duration
    public var cap: Duration

    public init(first: Duration = .seconds(1), cap: Duration = .seconds(60)) {
        self.first = first
        self.cap = cap
    }

    /// The delay after `failures` failing passes in a row (1 for the first failure).
    public func delay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        var delay = first
        for _ in 1..<min(failures, 64) {
            delay = delay * 2
            if delay >= cap { return cap }
        }
        return min(delay, cap)
    }
}

/// Is the runtime's configuration in force older than its files? A runtime reads its config
/// when its main process starts; a file changed after that (by the agent, an admin or a package
/// upgrade) is not in force until the next restart.
public enum StaleRuntime {
    /// One configuration file and its last change (the later of mtime and ctime), in µs since the
    /// epoch (CLOCK_REALTIME, as systemd's timestamps are).
    public struct FileChange: Sendable, Equatable {
        public var path: String
        public var changedAt: UInt64

        public init(path: String, changedAt: UInt64) {
            self.path = path
            self.changedAt = changedAt
        }
    }

    /// The newest file change after the main process started, or nil when the runtime is up to
    /// date or nothing can be said. `mainStartedAt` is the unit's `ExecMainStartTimestamp` (µs;
    /// 0 when it never started). Only an active unit can be stale (a stopped one reads its
    /// files when it starts). Changes dated in the future (`now` µs, plus a second of slack) are
    /// not trusted: a restart cannot make the process younger than them, so acting on them would
    /// restart for ever.
    public static func newerChange(activeState: String, mainStartedAt: UInt64, files: [FileChange], now: UInt64) -> FileChange? {
        guard activeState == "active", mainStartedAt > 0 else { return nil }
        return files
            .filter { $0.changedAt > mainStartedAt && $0.changedAt <= now + 1_000_000 }
            .max { $0.changedAt < $1.changedAt }
    }

    /// Whether a restart recorded at `decidedAt` (µs) is still needed.
    /// - active: only if its main process started before the decision; one that started after
    ///   it (someone restarted it, the machine rebooted) already runs with the new configuration.
    /// - failed, or activating (systemd's auto-restart after a failure): yes, because that may be
    ///   the new configuration failing, left so by an agent killed before it could verify the
    ///   restart; the restart (with the recorded rollback) settles it.
    /// - inactive (stopped on purpose): no; it reads its files when it is started.
    public static func restartStillNeeded(activeState: String, mainStartedAt: UInt64, decidedAt: UInt64) -> Bool {
        switch activeState {
        case "active", "reloading": return mainStartedAt == 0 || mainStartedAt <= decidedAt
        case "failed", "activating": return true
        default: return false
        }
    }

    /// The words `check`, `status` and the journal use.
    public static func message(runtime: String, file: String) -> String {
        let name = file.split(separator: "/").last.map(String.init) ?? file
        return "restart pending: \(runtime) started before \(name) changed"
    }
}

/// What to do with a restart that is due (decided by a pass, found stale, or left over from an
/// earlier run): now, later (rate limit), or only report it.
public enum RestartDecision: Sendable, Equatable {
    case now
    case wait(Duration)
    case reportOnly(String)

    /// - Parameters:
    ///   - policyNever: `restart.policy: never`.
    ///   - cannotAct: why this process cannot restart anything here (no systemd, --root), or nil.
    ///   - sinceLastRestart: time since the agent last restarted this runtime (across its own
    ///     restarts: the time is kept in the state directory), nil if never.
    ///   - minInterval: `daemon.minRestartInterval`.
    public static func decide(policyNever: Bool, cannotAct: String?, sinceLastRestart: Duration?, minInterval: Duration) -> RestartDecision {
        if policyNever { return .reportOnly("restart policy is never") }
        if let cannotAct { return .reportOnly(cannotAct) }
        if let since = sinceLastRestart, since >= .zero, since < minInterval { return .wait(minInterval - since) }
        return .now
    }
}

/// Runtime actions decided but not yet verified, kept in the state directory
/// (`pending-actions.json`) so that a restart of the agent, a crash or an OOM kill between a
/// configuration change and the runtime's restart does not lose the restart. Written
/// atomically (and synced) before the change it calls for, cleared once the action's outcome is
/// known. It carries what to restore if containerd does not come back, so a rollback survives a
/// kill too; it may hold config.toml's text, so the file is mode 0600 like the backups.
public struct PendingActionsRecord: Codable, Sendable, Equatable {
    public struct ConfigOriginal: Codable, Sendable, Equatable {
        public var hostPath: String
        /// nil: the file did not exist before (restoring removes it).
        public var contents: String?
        public var mode: UInt32

        public init(hostPath: String, contents: String?, mode: UInt32) {
            self.hostPath = hostPath
            self.contents = contents
            self.mode = mode
        }
    }

    public struct Action: Codable, Sendable, Equatable {
        public var reason: String
        /// µs since the epoch.
        public var decidedAt: UInt64
        /// config.toml files to put back if containerd does not come back (containerd only).
        public var originals: [ConfigOriginal]

        public init(reason: String, decidedAt: UInt64, originals: [ConfigOriginal] = []) {
            self.reason = reason
            self.decidedAt = decidedAt
            self.originals = originals
        }
    }

    public static let fileName = "pending-actions.json"

    public var version = 1
    public var containerdRestart: Action?
    public var crioReload: Action?
    /// CRI-O must be restarted, not reloaded: the agent's crio.conf drop-in (global_auth_file,
    /// which CRI-O reads only at start) changed.
    public var crioRestart: Action?
    /// When the agent last restarted containerd (µs since the epoch): the rate limit
    /// (`daemon.minRestartInterval`) holds across the agent's own restarts.
    public var lastContainerdRestart: UInt64?

    public init() {}

    public var isEmpty: Bool { containerdRestart == nil && crioReload == nil && crioRestart == nil }

    /// Records a containerd restart; an earlier pending one keeps its reason and originals (they
    /// are the configuration containerd runs with now, so the ones to go back to), but takes the
    /// later decision time: a restart is needed unless containerd started after the *last*
    /// change, and one started between the two changes (by an admin, or by a test) does not run
    /// the newer one.
    public mutating func addContainerdRestart(_ action: Action) {
        if containerdRestart == nil {
            containerdRestart = action
        } else if action.decidedAt > containerdRestart!.decidedAt {
            containerdRestart!.decidedAt = action.decidedAt
        }
    }

    public mutating func addCRIOReload(_ action: Action) {
        if crioReload == nil { crioReload = action }
    }

    public mutating func addCRIORestart(_ action: Action) {
        if crioRestart == nil { crioRestart = action }
    }
}
