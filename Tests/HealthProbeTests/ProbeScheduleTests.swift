import Foundation
import HealthProbe
import XCTest

/// Issue 17, item 3: a failing endpoint is rechecked quickly until the threshold decides; the
/// healthy ones are not probed more often; hysteresis still holds a flapping mirror.
final class ProbeScheduleTests: XCTestCase {
    func s(_ n: Double) -> Duration { .milliseconds(Int64(n * 1000)) }

    func result(_ id: String, up: Bool, local: Bool = false) -> ProbeResult {
        ProbeResult(
            id: id, url: "https://\(id)", registries: ["docker.io"], up: up, status: up ? 200 : nil, latencySeconds: 0,
            error: up ? nil : "timed out", local: local, checkedAt: Date())
    }

    /// The daemon's loop over simulated time, with the shipped settings (interval 30 s, jitter
    /// 3 s, timeout 5 s, failure threshold 3, success threshold 2). `answers(id, t)` says whether
    /// the endpoint answers a probe started at t; a failed probe of a hung endpoint takes the
    /// timeout. Returns every probe made (id, start) and when each endpoint was declared down.
    func simulate(
        endpoints: [String], until end: Double, recheck: Bool = true, answers: (String, Double) -> Bool
    ) -> (probes: [(String, Double)], downAt: [String: Double], downChanges: Int) {
        var tracker = HealthTracker(failureThreshold: 3, successThreshold: 2)
        var schedule = ProbeSchedule(interval: .seconds(30), jitter: .seconds(3), recheckDelay: .seconds(1))
        var probes: [(String, Double)] = []
        var downAt: [String: Double] = [:]
        var downChanges = 0
        var t = 0.0
        var ids = endpoints
        var full = true
        while t < end {
            let results = ids.map { id in result(id, up: answers(id, t)) }
            for id in ids { probes.append((id, t)) }
            let took = results.contains { !$0.up } ? 5.0 : 0.01
            t += took
            let before = tracker.down
            _ = tracker.record(results, forgetOthers: full)
            if tracker.down != before { downChanges += 1 }
            for id in tracker.down where downAt[id] == nil { downAt[id] = t }
            switch schedule.next(afterFull: full, health: tracker.sorted, now: s(t), random: 0.5) {
            case .full(let at):
                ids = endpoints
                full = true
                t = Double(at.components.seconds) + Double(at.components.attoseconds) / 1e18
            case .recheck where !recheck:
                // The old schedule: full rounds only.
                ids = endpoints
                full = true
                let at = schedule.nextFull!
                t = Double(at.components.seconds) + Double(at.components.attoseconds) / 1e18
            case .recheck(let which, let at):
                ids = which
                full = false
                t = Double(at.components.seconds) + Double(at.components.attoseconds) / 1e18
            }
        }
        return (probes, downAt, downChanges)
    }

    func testAHungMirrorIsDownWithin15sOfItsFirstFailedProbe() {
        let hangsAt = 40.0
        let run = simulate(endpoints: ["healthy", "hung"], until: 200) { id, t in id == "healthy" || t < hangsAt }
        let firstFailedProbe = run.probes.first { $0.0 == "hung" && $0.1 >= hangsAt }!.1
        let firstFailure = firstFailedProbe + 5  // its timeout
        let down = run.downAt["hung"]!
        XCTAssertLessThanOrEqual(down - firstFailure, 15, "down \(down - firstFailure) s after the first failed probe ended")
        XCTAssertLessThanOrEqual(down - firstFailedProbe, 18)
        // Without rechecks (full rounds only, the schedule before) it takes two more intervals.
        let slow = simulate(endpoints: ["healthy", "hung"], until: 200, recheck: false) { id, t in id == "healthy" || t < hangsAt }
        XCTAssertGreaterThan(slow.downAt["hung"]! - firstFailure, 60)
    }

    func testHealthyEndpointsAreNotProbedMoreOften() {
        let run = simulate(endpoints: ["healthy", "hung"], until: 600) { id, t in id == "healthy" || t < 40 }
        let healthy = run.probes.filter { $0.0 == "healthy" }.map(\.1)
        // One probe per full round: at least 30 s apart.
        for (a, b) in zip(healthy, healthy.dropFirst()) { XCTAssertGreaterThanOrEqual(b - a, 30, "probed at \(a) and \(b)") }
        XCTAssertLessThanOrEqual(healthy.count, 600 / 30 + 1)
        // A down endpoint is not rechecked early either: it waits for the full rounds.
        let hung = run.probes.filter { $0.0 == "hung" }.map(\.1)
        let down = run.downAt["hung"]!
        let after = hung.filter { $0 > down }
        for (a, b) in zip(after, after.dropFirst()) { XCTAssertGreaterThanOrEqual(b - a, 30) }
    }

    func testAFlappingMirrorIsNeverDemotedAndCannotChangeTheFilesOften() {
        // Fails every other probe: the threshold of three in a row is never reached.
        var n = 0
        let run = simulate(endpoints: ["flappy"], until: 600) { _, _ in
            n += 1
            return n % 2 == 0
        }
        XCTAssertEqual(run.downChanges, 0)
        // Two failures, one success, ...: down after three in a row, then up only after two good
        // full rounds; a cycle of 3 failures and 2 successes changes the files twice per cycle,
        // and a cycle takes at least two full intervals.
        var m = 0
        let pattern = [false, false, false, true, true]
        let cycling = simulate(endpoints: ["flappy"], until: 600) { _, _ in
            defer { m += 1 }
            return pattern[m % pattern.count]
        }
        XCTAssertLessThanOrEqual(cycling.downChanges, 2 * (600 / 60) + 1)
    }

    func testARecheckNeverPostponesTheFullRound() {
        var schedule = ProbeSchedule(interval: .seconds(30), jitter: .zero)
        var tracker = HealthTracker(failureThreshold: 3)
        _ = tracker.record([result("a", up: false), result("b", up: true)])
        XCTAssertEqual(schedule.next(afterFull: true, health: tracker.sorted, now: .seconds(5), random: 0), .recheck(["a"], at: .seconds(6)))
        XCTAssertEqual(schedule.next(afterFull: false, health: tracker.sorted, now: .seconds(34), random: 0), .full(at: .seconds(35)), "a recheck that would come after the full round is the full round")
        XCTAssertEqual(schedule.next(afterFull: false, health: tracker.sorted, now: .seconds(34.5), random: 0), .full(at: .seconds(35)))
        // A probe this node could not make (no trust store) is not rechecked: it is not the mirror.
        var local = HealthTracker(failureThreshold: 3)
        _ = local.record([result("c", up: false, local: true)])
        XCTAssertEqual(schedule.next(afterFull: true, health: local.sorted, now: .seconds(40), random: 0), .full(at: .seconds(70)))
    }

    func testARecheckKeepsTheOtherEndpoints() {
        var tracker = HealthTracker(failureThreshold: 3)
        _ = tracker.record([result("a", up: false), result("b", up: true)])
        _ = tracker.record([result("a", up: false)], forgetOthers: false)
        XCTAssertEqual(tracker.sorted.map(\.id), ["a", "b"])
        XCTAssertEqual(tracker.endpoints["a"]?.consecutiveFailures, 2)
    }
}
