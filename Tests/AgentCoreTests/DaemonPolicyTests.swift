import AgentCore
import RuntimeActions
import XCTest

/// The daemon's policy, rule by rule: each row is a sequence of events and the effects the last
/// one must produce (and, where it matters, the state it leaves).
final class DaemonPolicyTests: XCTestCase {
    typealias P = DaemonPolicy
    let debounce = Duration.milliseconds(200)
    let restartDelay = Duration.seconds(5)

    func policy() -> DaemonPolicy { DaemonPolicy(debounce: debounce, restartDelay: restartDelay) }

    /// Feeds `events` and returns the effects of each.
    func run(_ events: [P.Event], on start: DaemonPolicy? = nil) -> (DaemonPolicy, [[P.Effect]]) {
        var p = start ?? policy()
        let effects = events.map { p.handle($0) }
        return (p, effects)
    }

    struct Row {
        var name: String
        var events: [DaemonPolicy.Event]
        /// The effects of the last event.
        var last: [DaemonPolicy.Effect]
        var line: UInt = #line
    }

    func check(_ rows: [Row]) {
        for row in rows {
            let (_, effects) = run(row.events)
            XCTAssertEqual(effects.last ?? [], row.last, row.name, line: row.line)
        }
    }

    // MARK: - Debounce, coalescing, drift

    /// Reaction without a blind wait (PassTiming inside the policy): the daemon's clock is a
    /// monotonic `Duration`; `t(ms)` is a time on it.
    func testReactionToCompleteChanges() {
        func t(_ ms: Int) -> Duration { .milliseconds(ms) }
        func complete(_ ms: Int) -> P.Event { .filesChanged(input: true, drift: [], change: .complete, at: t(ms)) }
        check([
            Row(name: "a complete change when quiet runs a pass at once", events: [complete(10_000)], last: [.armDebounce(.zero)]),
            Row(
                name: "a partial change waits the debounce even when quiet",
                events: [.filesChanged(input: true, drift: [], change: .partial, at: t(10_000))], last: [.armDebounce(debounce)]),
            Row(
                name: "a complete change right after a pass is part of a burst: it waits for quiet",
                events: [complete(10_000), .debounceExpired, .passEnded(at: t(10_010)), complete(10_050)], last: [.armDebounce(debounce)]),
            Row(
                name: "a burst holds its pass back at most five windows",
                events: [.passEnded(at: t(10_000)), complete(10_050), complete(10_850), complete(11_000)], last: [.armDebounce(t(50))]),
            Row(
                name: "a batch with no event that matters does not re-arm a waiting pass",
                events: [complete(10_000), .filesChanged(input: false, drift: [], change: nil, at: t(10_100))], last: []),
        ])
    }

    func testDebounceAndCoalescing() {
        let failed = P.Event.passFinished(.failed([.transient(errno: 28)]), actionsDue: false)
        check([
            Row(name: "a desired-state change arms the debounce", events: [.filesChanged(input: true, drift: [])], last: [.armDebounce(debounce)]),
            Row(
                name: "every change inside the window re-arms it (a burst is one pass)",
                events: [.filesChanged(input: true, drift: []), .filesChanged(input: true, drift: [])], last: [.armDebounce(debounce)]),
            Row(
                name: "a burst ends in one pass for the desired state",
                events: [.filesChanged(input: true, drift: []), .filesChanged(input: true, drift: []), .debounceExpired],
                last: [.runPass(reason: "desired state changed", drift: [])]),
            Row(
                name: "an expiry with nothing pending still runs a pass, as the daemon always did",
                events: [.filesChanged(input: true, drift: []), .debounceExpired, .debounceExpired],
                last: [.runPass(reason: "managed files changed", drift: [])]),
            Row(name: "no change, no debounce", events: [.filesChanged(input: false, drift: [])], last: []),
            Row(name: "drift arms the debounce", events: [.filesChanged(input: false, drift: ["/h/a"])], last: [.armDebounce(debounce)]),
            Row(
                name: "drift is repaired by a pass that knows what drifted",
                events: [.filesChanged(input: false, drift: ["/h/a"]), .filesChanged(input: false, drift: ["/h/b"]), .debounceExpired],
                last: [.runPass(reason: "managed files changed", drift: ["/h/a", "/h/b"])]),
            Row(
                name: "drift waits for a retry that is due (the retry rewrites the files anyway)",
                events: [failed, .filesChanged(input: false, drift: ["/h/a"])], last: []),
            Row(
                name: "new input does not wait for the retry",
                events: [failed, .filesChanged(input: true, drift: [])], last: [.armDebounce(debounce)]),
            Row(
                name: "the retry pass is named so",
                events: [failed, .debounceExpired], last: [.runPass(reason: "retry", drift: [])]),
        ])
    }

    // MARK: - Backoff by failure kind

    func testBackoffByFailureKind() {
        let enospc = P.PassOutcome.failed([.transient(errno: 28)])
        let erofs = P.PassOutcome.failed([.transient(errno: 30)])
        check([
            Row(
                name: "a full disk is retried after 1 s",
                events: [.passFinished(enospc, actionsDue: false)],
                last: [.scheduleRetry(after: .seconds(1), failuresInARow: 1), .armDebounce(.seconds(1))]),
            Row(
                name: "a read-only file system is retried too",
                events: [.passFinished(erofs, actionsDue: false)],
                last: [.scheduleRetry(after: .seconds(1), failuresInARow: 1), .armDebounce(.seconds(1))]),
            Row(
                name: "the delay doubles with failures in a row",
                events: Array(repeating: .passFinished(enospc, actionsDue: false), count: 4),
                last: [.scheduleRetry(after: .seconds(8), failuresInARow: 4), .armDebounce(.seconds(8))]),
            Row(
                name: "a configuration error alone is not retried",
                events: [.passFinished(.failed([.configuration]), actionsDue: false)], last: []),
            Row(
                name: "a configuration error beside a write failure: the write failure is retried",
                events: [.passFinished(.failed([.configuration, .transient(errno: 28)]), actionsDue: false)],
                last: [.scheduleRetry(after: .seconds(1), failuresInARow: 1), .armDebounce(.seconds(1))]),
            Row(
                name: "success after failures says so and resets the count",
                events: [.passFinished(enospc, actionsDue: false), .passFinished(enospc, actionsDue: false), .passFinished(.ok, actionsDue: false)],
                last: [.recovered(afterFailures: 2)]),
            Row(
                name: "after recovery the next failure starts again at 1 s",
                events: [.passFinished(enospc, actionsDue: false), .passFinished(enospc, actionsDue: false), .passFinished(.ok, actionsDue: false), .passFinished(enospc, actionsDue: false)],
                last: [.scheduleRetry(after: .seconds(1), failuresInARow: 1), .armDebounce(.seconds(1))]),
            Row(
                name: "invalid desired state leaves the retry state alone",
                events: [.passFinished(enospc, actionsDue: false), .passFinished(.invalid, actionsDue: false), .passFinished(enospc, actionsDue: false)],
                last: [.scheduleRetry(after: .seconds(2), failuresInARow: 2), .armDebounce(.seconds(2))]),
        ])
        let (p, _) = run([.passFinished(.failed([.configuration]), actionsDue: false)])
        XCTAssertFalse(p.retryDue, "a configuration error: no retry is due, drift gets its own pass")
    }

    // MARK: - Restart delay and actions off the loop

    func testRestartDelayAndActionsInFlight() {
        let started: [P.Event] = [.passFinished(.ok, actionsDue: true), .restartTimerExpired]
        check([
            Row(name: "a pass that calls for a restart arms the restart delay", events: [.passFinished(.ok, actionsDue: true)], last: [.armRestartTimer(restartDelay)]),
            Row(
                name: "a failing pass that called for a restart still arms it",
                events: [.passFinished(.failed([.transient(errno: 28)]), actionsDue: true)],
                last: [.armRestartTimer(restartDelay), .scheduleRetry(after: .seconds(1), failuresInARow: 1), .armDebounce(.seconds(1))]),
            Row(name: "actions found in the record wait the restart delay", events: [.actionsResumed], last: [.armRestartTimer(restartDelay)]),
            Row(name: "the delay over, the actions go to the worker", events: started, last: [.startActions]),
            Row(name: "a second expiry while they run starts nothing", events: started + [.restartTimerExpired], last: []),
            Row(
                name: "and is taken up once they end",
                events: started + [.restartTimerExpired, .actionsFinished], last: [.armRestartTimer(restartDelay)]),
            Row(
                name: "a pass due while an action runs waits for it",
                events: started + [.filesChanged(input: true, drift: []), .debounceExpired], last: []),
            Row(
                name: "and runs when the action ends",
                events: started + [.filesChanged(input: true, drift: []), .debounceExpired, .actionsFinished],
                last: [.runPass(reason: "desired state changed", drift: [])]),
            Row(name: "a reload during an action waits for it", events: started + [.reloadRequested(request: 7)], last: []),
            Row(
                name: "and is carried out, in order, once it ends",
                events: started + [.reloadRequested(request: 7), .reloadRequested(request: 8), .actionsFinished],
                last: [.reload(request: 7), .reload(request: 8)]),
            Row(name: "a reload while idle is carried out at once", events: [.reloadRequested(request: 3)], last: [.reload(request: 3)]),
            Row(name: "nothing waited: the end of an action does nothing more", events: started + [.actionsFinished], last: []),
        ])
        let (p, _) = run(started)
        XCTAssertTrue(p.actionInFlight)
    }

    // MARK: - Stopping

    func testStopping() {
        let started: [P.Event] = [.passFinished(.ok, actionsDue: true), .restartTimerExpired]
        check([
            Row(name: "SIGTERM while idle stops now", events: [.terminateRequested], last: [.notifyStopping(waitingForAction: false), .exit]),
            Row(
                name: "SIGTERM during an action lets it finish first",
                events: started + [.terminateRequested], last: [.notifyStopping(waitingForAction: true)]),
            Row(name: "then stops when it ends", events: started + [.terminateRequested, .actionsFinished], last: [.exit]),
            Row(
                name: "work that waited for the action is dropped when stopping",
                events: started + [.reloadRequested(request: 1), .filesChanged(input: true, drift: []), .debounceExpired, .terminateRequested, .actionsFinished],
                last: [.exit]),
            Row(name: "a second SIGTERM changes nothing", events: started + [.terminateRequested, .terminateRequested], last: []),
            Row(name: "no new pass while stopping", events: started + [.terminateRequested, .filesChanged(input: true, drift: []), .debounceExpired], last: []),
            Row(name: "no new action while stopping", events: started + [.terminateRequested, .restartTimerExpired], last: []),
            Row(name: "no reload while stopping", events: started + [.terminateRequested, .reloadRequested(request: 2)], last: []),
        ])
    }

    // MARK: - Probes

    func testProbeRounds() {
        let started: [P.Event] = [.passFinished(.ok, actionsDue: true), .restartTimerExpired]
        check([
            Row(name: "a round that changes nothing only publishes", events: [.probeRoundFinished(healthChanged: false)], last: [.publishStatus]),
            Row(
                name: "a change of the down set (demotion) starts a pass",
                events: [.probeRoundFinished(healthChanged: true)], last: [.runPass(reason: "mirror health changed", drift: [])]),
            Row(
                name: "during an action the health pass waits",
                events: started + [.probeRoundFinished(healthChanged: true)], last: [.publishStatus]),
            Row(
                name: "and runs when it ends",
                events: started + [.probeRoundFinished(healthChanged: true), .actionsFinished], last: [.runPass(reason: "mirror health changed", drift: [])]),
        ])
        XCTAssertEqual(P.nextProbeDelay(interval: .seconds(30), jitter: .seconds(3), random: 0), .seconds(30))
        XCTAssertEqual(P.nextProbeDelay(interval: .seconds(30), jitter: .seconds(3), random: 0.5), .milliseconds(31_500))
        XCTAssertEqual(P.nextProbeDelay(interval: .seconds(30), jitter: .seconds(3), random: 1), .seconds(33))
        XCTAssertEqual(P.nextProbeDelay(interval: .seconds(30), jitter: .seconds(3), random: 7), .seconds(33), "the random part is clamped")
        XCTAssertEqual(P.nextProbeDelay(interval: .seconds(30), jitter: .zero, random: 0.9), .seconds(30), "no jitter: exactly the interval")
    }

    func testEventSourcesAreNamed() {
        XCTAssertEqual(
            Set(P.Source.allCases.map(\.rawValue)),
            ["fileEvents", "signals", "debounceTimer", "restartTimer", "watchdogTimer", "statusTimer", "probeTimer", "probeDone", "actionDone"])
    }
}
