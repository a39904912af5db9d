/// When the daemon runs a pass after file changes: at once for a complete change, and still one
/// pass per burst. Pure: the daemon feeds it what inotify said and a monotonic time (any origin),
/// and arms its timer for what comes back.
///
/// - A *complete* change (a file closed after writing, renamed into place, deleted or renamed
///   away: `IN_CLOSE_WRITE`, `IN_MOVED_TO`, `IN_DELETE`, `IN_MOVED_FROM` of a name the agent
///   reads) runs a pass now when things were quiet: no pass ended less than `window` ago and
///   no pass waits already.
/// - Otherwise it is part of a burst: the pass waits until `window` after the last change of
///   the burst (a debounce), but never longer than `maxWait` after the first change that had to
///   wait, so a tool that keeps writing still sees its changes applied. A tool writing ten files
///   gets a pass for the first file at once and one more for the other nine, never ten.
/// - A *partial* change (a file created or its mode changed, with its content perhaps still to
///   come; any event on a name the agent does not read, such as a tool's temporary file before
///   its rename) waits `window` of quiet, as a plain debounce does. It never holds back a
///   complete change that comes after it: a file written under a temporary name and renamed
///   into place is applied at the rename.
public struct PassTiming: Sendable, Equatable {
    public enum Change: Sendable, Equatable {
        case complete
        case partial
    }

    public enum Decision: Sendable, Equatable {
        /// Run the pass now.
        case now
        /// Run the pass at this time (same origin as the times given).
        case at(Duration)
    }

    /// The quiet time that ends a burst (`daemon.debounce`).
    public var window: Duration
    /// When the last pass ended, if any.
    public private(set) var lastPassEnded: Duration?
    /// When the waiting pass is due, if one waits.
    public private(set) var due: Duration?
    /// When the first complete change of the current burst had to wait.
    public private(set) var burstSince: Duration?

    public init(window: Duration) {
        self.window = max(window, .zero)
    }

    /// The longest a burst holds its pass back: five windows (1 s with the shipped 200 ms).
    public var maxWait: Duration { window * 5 }

    /// New changes seen at `now` (the strongest of a batch of events: one complete event makes
    /// the batch complete). Returns when the pass for them runs.
    public mutating func changed(_ change: Change, at now: Duration) -> Decision {
        let quietSinceLastPass = lastPassEnded.map { now - $0 >= window } ?? true
        switch change {
        case .complete where quietSinceLastPass && burstSince == nil:
            due = now
            return .now
        case .complete:
            let since = burstSince ?? now
            burstSince = since
            due = min(now + window, since + maxWait)
        case .partial:
            var quiet = max(due ?? now, now + window)
            if let burstSince { quiet = min(quiet, burstSince + maxWait) }
            due = quiet
        }
        return .at(due!)
    }

    /// A pass (for whatever reason) ended at `now`: what was pending is in force.
    public mutating func passEnded(at now: Duration) {
        lastPassEnded = now
        due = nil
        burstSince = nil
    }
}

/// Which kind of change an inotify event is, for `PassTiming` (masks as in <sys/inotify.h>).
public enum ChangeKind {
    public static let closeWrite: UInt32 = 0x0000_0008
    public static let movedFrom: UInt32 = 0x0000_0040
    public static let movedTo: UInt32 = 0x0000_0080
    public static let delete: UInt32 = 0x0000_0200
    public static let deleteSelf: UInt32 = 0x0000_0400
    public static let moveSelf: UInt32 = 0x0000_0800
    public static let queueOverflow: UInt32 = 0x0000_4000

    /// `read`: whether the agent reads through the event's name: a desired-state name or a
    /// ConfigMap mount's `..data` link (`DesiredStateLoader.readsThrough`), or any name in a
    /// directory of managed files. An event on a name the agent does not read is a tool's work
    /// in progress, even a rename: a tool that writes `.x.tmp.tmp`, renames it to `.x.tmp` and
    /// that to `x.yaml` has published nothing until the last rename, and a pass for the first
    /// one would make the last one wait a burst window.
    public static func of(mask: UInt32, read: Bool) -> PassTiming.Change {
        if mask & (deleteSelf | moveSelf | queueOverflow) != 0 { return .complete }
        if read && mask & (closeWrite | movedTo | movedFrom | delete) != 0 { return .complete }
        return .partial
    }
}
