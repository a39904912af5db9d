import RuntimeActions

/// The daemon's policy as a pure state machine: an event goes in, the state moves, and the
/// effects the loop must carry out come out. No clock, no files, no bus, no randomness (the
/// caller passes them in as values), so every rule is a row in a table test.
///
/// The rules:
/// - **Reaction and coalescing.** A complete change of the desired state (a file closed after
///   writing, renamed into place, deleted) runs a pass at once when things were quiet; inside a
///   burst the pass waits for `debounce` of quiet (at most five windows), so a tool writing ten
///   files gets two passes, never ten (`PassTiming`). A partial change waits the debounce.
/// - **Drift.** A change of a managed file is repaired by a pass after the debounce, unless a
///   retry is due: the retry rewrites those files anyway, so a failing pass is not re-run per
///   event.
/// - **Backoff by failure kind.** A pass that failed for a reason a retry may mend (a full disk,
///   a read-only file system, no permission) is retried after `retrySchedule` (1, 2, 4 ... 60 s);
///   a configuration error no retry can mend is not retried: the next event starts a pass.
/// - **Restart delay.** Restarts and reloads wait `restartDelay` after the pass that called for
///   them (one restart for a burst of passes).
/// - **Actions off the loop.** While a runtime action runs (on a worker), passes, reloads and
///   further actions wait for it; the loop keeps answering the watchdog, signals and file events.
/// - **Stopping.** SIGTERM while idle stops now. SIGTERM during an action lets it finish (its
///   restore included), then stops: the grace is bounded by the action's own timeouts and by
///   systemd's `TimeoutStopSec`; a kill beyond that leaves the durable record for the next start.
public struct DaemonPolicy: Sendable, Equatable {
    /// Where events come from: named, not positions in an array.
    public enum Source: String, Sendable, CaseIterable {
        case fileEvents, signals, debounceTimer, restartTimer, watchdogTimer, statusTimer, probeTimer, probeDone, actionDone
    }

    /// Why a pass failed, as far as retrying goes.
    public enum FailureKind: Sendable, Equatable, Hashable {
        /// An errno a later try may not see again (ENOSPC, EROFS, EACCES, EIO, ...).
        case transient(errno: Int32?)
        /// A configuration no retry can mend (said once, waits for a change).
        case configuration
    }

    /// How a pass ended, as the policy needs to know it.
    public enum PassOutcome: Sendable, Equatable {
        /// Everything in force.
        case ok
        /// Invalid desired state (the last good configuration stays) or report-only mode: the
        /// retry state is left as it was.
        case invalid
        /// Something could not be put in force.
        case failed([FailureKind])
    }

    public enum Event: Sendable, Equatable {
        /// File events were sorted at `at` (monotonic, any origin): the desired state changed,
        /// and/or these managed files did; `change`: the strongest kind among the events (nil: no
        /// event that matters).
        case filesChanged(input: Bool, drift: Set<String>, change: PassTiming.Change? = .partial, at: Duration = .zero)
        case debounceExpired
        /// A pass ended; `actionsDue`: a restart or reload is now pending.
        case passFinished(PassOutcome, actionsDue: Bool)
        /// A pass (for whatever reason) ended at `at` (same clock as `filesChanged`): what was
        /// pending is in force, and a complete change within `debounce` from now is a burst.
        case passEnded(at: Duration)
        /// Pending actions found at start (the durable record) or after a reload.
        case actionsResumed
        case restartTimerExpired
        /// The worker is done with the actions it was given.
        case actionsFinished
        /// SIGHUP (with the number `mirror-agent reload` sent along).
        case reloadRequested(request: Int32)
        case terminateRequested
        /// A probe round ended; `healthChanged`: with demotion on, the set of down endpoints moved.
        case probeRoundFinished(healthChanged: Bool)
    }

    public enum Effect: Sendable, Equatable {
        case armDebounce(Duration)
        /// One pass; `drift`: managed files that changed by hand before it.
        case runPass(reason: String, drift: Set<String>)
        case armRestartTimer(Duration)
        /// Hand the pending actions to the worker.
        case startActions
        case reload(request: Int32)
        /// Publish the status as it is (probe results) without a pass.
        case publishStatus
        /// A retryable failure: the next try comes after `after`; `failuresInARow` counts it.
        case scheduleRetry(after: Duration, failuresInARow: Int)
        /// Passes succeed again after this many failing ones.
        case recovered(afterFailures: Int)
        /// STOPPING=1; `waitingForAction`: an action is finishing first.
        case notifyStopping(waitingForAction: Bool)
        case exit
    }

    public var debounce: Duration { didSet { passTiming.window = debounce } }
    public var restartDelay: Duration
    public var retrySchedule: RetrySchedule

    // State.
    /// When a pass follows file changes.
    public private(set) var passTiming: PassTiming
    public private(set) var inputChanged = false
    public private(set) var drift: Set<String> = []
    public private(set) var retryDue = false
    public private(set) var failuresInARow = 0
    public private(set) var actionInFlight = false
    public private(set) var stopping = false
    /// Work that came due while an action ran, done once it ends.
    public private(set) var passDeferred = false
    public private(set) var actionsDeferred = false
    public private(set) var reloadsDeferred: [Int32] = []
    /// A pass for mirror health, deferred while an action ran.
    public private(set) var healthPassDeferred = false

    public init(debounce: Duration, restartDelay: Duration, retrySchedule: RetrySchedule = RetrySchedule()) {
        self.debounce = debounce
        self.passTiming = PassTiming(window: debounce)
        self.restartDelay = restartDelay
        self.retrySchedule = retrySchedule
    }

    /// Whether the loop is busy elsewhere (an action on the worker, or stopping).
    private var busy: Bool { actionInFlight || stopping }

    public mutating func handle(_ event: Event) -> [Effect] {
        switch event {
        case .filesChanged(let input, let changed, let change, let now):
            if input { inputChanged = true }
            drift.formUnion(changed)
            // New input is tried at once or after the debounce; drift waits for a retry that is due.
            guard let change, inputChanged || (!drift.isEmpty && !retryDue) else { return [] }
            switch passTiming.changed(change, at: now) {
            case .now: return [.armDebounce(.zero)]
            case .at(let due): return [.armDebounce(max(.zero, due - now))]
            }

        case .debounceExpired:
            if busy {
                passDeferred = true
                return []
            }
            return [takePass()]

        case .passFinished(let outcome, let actionsDue):
            var effects: [Effect] = []
            if actionsDue { effects.append(.armRestartTimer(restartDelay)) }
            switch outcome {
            case .invalid:
                break
            case .ok:
                if failuresInARow > 0 { effects.append(.recovered(afterFailures: failuresInARow)) }
                failuresInARow = 0
                retryDue = false
            case .failed(let kinds):
                if kinds.allSatisfy({ $0 == .configuration }) {
                    // Only configuration errors: said once; nothing to retry until a change.
                    failuresInARow = 0
                    retryDue = false
                } else {
                    failuresInARow += 1
                    retryDue = true
                    let delay = retrySchedule.delay(afterFailures: failuresInARow)
                    effects.append(.scheduleRetry(after: delay, failuresInARow: failuresInARow))
                    effects.append(.armDebounce(delay))
                }
            }
            return effects

        case .passEnded(let now):
            passTiming.passEnded(at: now)
            return []

        case .actionsResumed:
            return [.armRestartTimer(restartDelay)]

        case .restartTimerExpired:
            if stopping { return [] }
            if actionInFlight {
                actionsDeferred = true
                return []
            }
            actionInFlight = true
            return [.startActions]

        case .actionsFinished:
            actionInFlight = false
            if stopping { return [.exit] }
            var effects: [Effect] = reloadsDeferred.map { .reload(request: $0) }
            reloadsDeferred = []
            if healthPassDeferred {
                healthPassDeferred = false
                effects.append(.runPass(reason: "mirror health changed", drift: []))
            }
            if passDeferred {
                passDeferred = false
                effects.append(takePass())
            }
            if actionsDeferred {
                actionsDeferred = false
                effects.append(.armRestartTimer(restartDelay))
            }
            return effects

        case .reloadRequested(let request):
            if stopping { return [] }
            if actionInFlight {
                reloadsDeferred.append(request)
                return []
            }
            return [.reload(request: request)]

        case .terminateRequested:
            if stopping { return [] }
            stopping = true
            if actionInFlight { return [.notifyStopping(waitingForAction: true)] }
            return [.notifyStopping(waitingForAction: false), .exit]

        case .probeRoundFinished(let healthChanged):
            guard healthChanged else { return [.publishStatus] }
            if busy {
                healthPassDeferred = true
                return [.publishStatus]
            }
            return [.runPass(reason: "mirror health changed", drift: [])]
        }
    }

    /// The pass a debounce (or a deferred one) starts, and its reason.
    private mutating func takePass() -> Effect {
        let reason = inputChanged ? "desired state changed" : retryDue ? "retry" : "managed files changed"
        let effect = Effect.runPass(reason: reason, drift: drift)
        inputChanged = false
        drift = []
        retryDue = false
        return effect
    }

    /// When the next probe round starts: every `interval`, plus a part of `jitter` (`random` in
    /// 0...1, from the caller) so that nodes do not probe in step.
    public static func nextProbeDelay(interval: Duration, jitter: Duration, random: Double) -> Duration {
        guard jitter > .zero else { return interval }
        let fraction = min(1, max(0, random))
        return interval + jitter * fraction
    }
}
