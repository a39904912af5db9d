import Foundation
import RuntimeActions
import XCTest

/// The pure decisions behind issue 22: the retry schedule, stale-runtime detection, whether a
/// recorded restart is still needed, the rate limit, and the durable record's round trip.
final class RestartPlanningTests: XCTestCase {
    func testRetryScheduleIsTheAnnouncedOne() {
        let schedule = RetrySchedule()
        XCTAssertEqual((1...9).map { schedule.delay(afterFailures: $0) }, [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        XCTAssertEqual(schedule.delay(afterFailures: 0), .zero)
        XCTAssertEqual(schedule.delay(afterFailures: 10_000), .seconds(60), "no overflow after a long outage")
    }

    func testOverAMinuteOfFailuresThereAreSixPasses() {
        // What the storm test checks on the real daemon: passes at 0, 1, 3, 7, 15, 31 s.
        let schedule = RetrySchedule()
        var at: Duration = .zero
        var passes: [Duration] = []
        var failures = 0
        while at < .seconds(62) {
            passes.append(at)
            failures += 1
            at += schedule.delay(afterFailures: failures)
        }
        XCTAssertEqual(passes, [0, 1, 3, 7, 15, 31].map { Duration.seconds($0) })
    }

    let t0: UInt64 = 1_800_000_000_000_000

    func testStaleWhenAFileChangedAfterTheMainProcessStarted() {
        let files = [
            StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 + 5_000_000),
            StaleRuntime.FileChange(path: "/etc/containerd/conf.d/a.toml", changedAt: t0 - 5_000_000),
        ]
        let change = StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: files, now: t0 + 10_000_000)
        XCTAssertEqual(change?.path, "/etc/containerd/config.toml")
        XCTAssertEqual(StaleRuntime.message(runtime: "containerd", file: change!.path), "restart pending: containerd started before config.toml changed")
    }

    func testTheNewestOfSeveralChangedImportsIsNamed() {
        let files = [
            StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 + 1),
            StaleRuntime.FileChange(path: "/etc/containerd/conf.d/b.toml", changedAt: t0 + 9),
        ]
        XCTAssertEqual(StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: files, now: t0 + 10)?.path, "/etc/containerd/conf.d/b.toml")
    }

    func testNotStale() {
        let older = [StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 - 1)]
        let newer = [StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 + 1)]
        XCTAssertNil(StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: older, now: t0), "started after the change")
        XCTAssertNil(StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: [], now: t0), "no files")
        XCTAssertNil(StaleRuntime.newerChange(activeState: "inactive", mainStartedAt: t0, files: newer, now: t0 + 2), "a stopped unit reads its files at start")
        XCTAssertNil(StaleRuntime.newerChange(activeState: "failed", mainStartedAt: t0, files: newer, now: t0 + 2))
        XCTAssertNil(StaleRuntime.newerChange(activeState: "active", mainStartedAt: 0, files: newer, now: t0 + 2), "never started: nothing to compare")
    }

    func testAChangeDatedInTheFutureIsNotTrusted() {
        // touch -d tomorrow: a restart cannot make containerd younger than that; acting on it
        // would restart containerd for ever.
        let future = [StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 + 86_400_000_000)]
        XCTAssertNil(StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: future, now: t0 + 1_000))
        // Within a second of now (clock granularity) it still counts.
        let justNow = [StaleRuntime.FileChange(path: "/etc/containerd/config.toml", changedAt: t0 + 1_500_000)]
        XCTAssertNotNil(StaleRuntime.newerChange(activeState: "active", mainStartedAt: t0, files: justNow, now: t0 + 1_000_000))
    }

    func testARecordedRestartIsNeededOnlyWhileTheOldProcessRuns() {
        let decided = t0
        XCTAssertTrue(StaleRuntime.restartStillNeeded(activeState: "active", mainStartedAt: decided - 60_000_000, decidedAt: decided))
        XCTAssertFalse(StaleRuntime.restartStillNeeded(activeState: "active", mainStartedAt: decided + 1, decidedAt: decided), "restarted since")
        XCTAssertFalse(StaleRuntime.restartStillNeeded(activeState: "inactive", mainStartedAt: decided - 1, decidedAt: decided), "stopped on purpose")
        // Killed between the restart and its verification: the new config may be what fails.
        XCTAssertTrue(StaleRuntime.restartStillNeeded(activeState: "failed", mainStartedAt: decided + 1, decidedAt: decided))
        XCTAssertTrue(StaleRuntime.restartStillNeeded(activeState: "activating", mainStartedAt: decided + 1, decidedAt: decided))
        XCTAssertTrue(StaleRuntime.restartStillNeeded(activeState: "active", mainStartedAt: 0, decidedAt: decided), "unknown start: restart")
    }

    func testRestartDecision() {
        let minute = Duration.seconds(60)
        XCTAssertEqual(RestartDecision.decide(policyNever: false, cannotAct: nil, sinceLastRestart: nil, minInterval: minute), .now)
        XCTAssertEqual(RestartDecision.decide(policyNever: false, cannotAct: nil, sinceLastRestart: .seconds(61), minInterval: minute), .now)
        XCTAssertEqual(RestartDecision.decide(policyNever: false, cannotAct: nil, sinceLastRestart: .seconds(20), minInterval: minute), .wait(.seconds(40)))
        XCTAssertEqual(
            RestartDecision.decide(policyNever: true, cannotAct: nil, sinceLastRestart: nil, minInterval: minute), .reportOnly("restart policy is never"))
        XCTAssertEqual(RestartDecision.decide(policyNever: false, cannotAct: "no systemd", sinceLastRestart: nil, minInterval: minute), .reportOnly("no systemd"))
        // A clock that went backwards does not block restarts for ever.
        XCTAssertEqual(RestartDecision.decide(policyNever: false, cannotAct: nil, sinceLastRestart: .seconds(-3600), minInterval: minute), .now)
    }

    func testTheRecordKeepsTheFirstPendingRestartAndRoundTrips() throws {
        var record = PendingActionsRecord()
        XCTAssertTrue(record.isEmpty)
        let original = PendingActionsRecord.ConfigOriginal(hostPath: "/etc/containerd/config.toml", contents: "version = 2\n", mode: 0o644)
        record.addContainerdRestart(.init(reason: "config.toml fixed", decidedAt: t0, originals: [original]))
        record.addContainerdRestart(.init(reason: "later", decidedAt: t0 + 1, originals: []))
        XCTAssertEqual(record.containerdRestart?.reason, "config.toml fixed", "the originals containerd runs with are the ones to go back to")
        XCTAssertEqual(record.containerdRestart?.originals, [original])
        XCTAssertEqual(record.containerdRestart?.decidedAt, t0 + 1, "a containerd started between the two changes still needs the restart")
        XCTAssertTrue(StaleRuntime.restartStillNeeded(activeState: "active", mainStartedAt: t0 + 1, decidedAt: record.containerdRestart!.decidedAt))
        record.addCRIOReload(.init(reason: "drop-in changed", decidedAt: t0))
        record.lastContainerdRestart = t0 - 5
        let decoded = try JSONDecoder().decode(PendingActionsRecord.self, from: JSONEncoder().encode(record))
        XCTAssertEqual(decoded, record)
        XCTAssertFalse(decoded.isEmpty)
    }

    func testACRIORestartIsRecordedAndAnOlderRecordStillReads() throws {
        var record = PendingActionsRecord()
        record.addCRIORestart(.init(reason: "global_auth_file changed", decidedAt: t0))
        record.addCRIORestart(.init(reason: "later", decidedAt: t0 + 1))
        XCTAssertFalse(record.isEmpty)
        XCTAssertEqual(record.crioRestart?.reason, "global_auth_file changed")
        XCTAssertEqual(try JSONDecoder().decode(PendingActionsRecord.self, from: JSONEncoder().encode(record)), record)
        // A record written before crioRestart existed has no such key.
        let old = try JSONDecoder().decode(PendingActionsRecord.self, from: Data(#"{"version": 1, "crioReload": {"reason": "drop-in changed", "decidedAt": 1, "originals": []}}"#.utf8))
        XCTAssertNil(old.crioRestart)
        XCTAssertEqual(old.crioReload?.reason, "drop-in changed")
    }
}
