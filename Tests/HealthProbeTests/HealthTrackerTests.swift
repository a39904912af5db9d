import DesiredState
import Foundation
import HealthProbe
import XCTest

final class HealthTrackerTests: XCTestCase {
    func result(_ url: String, up: Bool, local: Bool = false) -> ProbeResult {
        ProbeResult(
            url: url, registries: ["docker.io"], up: up, status: up ? 200 : nil, latencySeconds: 0.01,
            error: up ? nil : local ? "node configuration error: no system trust store" : "connection refused", cause: up ? nil : local ? "node-no-trust-store" : "connection-refused",
            local: local, checkedAt: Date())
    }

    func testDownAfterNFailuresUpAfterMSuccessesEachLoggedOnce() {
        var tracker = HealthTracker(failureThreshold: 3, successThreshold: 2)
        XCTAssertEqual(tracker.record([result("a", up: true)]), [], "unknown to up is not news")
        XCTAssertEqual(tracker.record([result("a", up: false)]).map(\.to), [.failing], "the first failure is")
        XCTAssertEqual(tracker.endpoints["a"]?.stateText, "failing (1/3)")
        XCTAssertEqual(tracker.record([result("a", up: false)]), [], "still failing: not logged again")
        XCTAssertEqual(tracker.endpoints["a"]?.stateText, "failing (2/3)")
        XCTAssertEqual(tracker.down, [])
        let down = tracker.record([result("a", up: false)])
        XCTAssertEqual(down.map(\.to), [.down])
        XCTAssertEqual(down.first?.reason, "connection refused")
        XCTAssertEqual(tracker.down, ["a"])
        XCTAssertEqual(tracker.record([result("a", up: false)]), [], "still down: not logged again")
        XCTAssertEqual(tracker.record([result("a", up: true)]), [], "one success is not enough")
        XCTAssertEqual(tracker.down, ["a"])
        XCTAssertEqual(tracker.record([result("a", up: true)]).map(\.to), [.up])
        XCTAssertEqual(tracker.down, [])
    }

    func testAFlapDoesNotMarkDown() {
        var tracker = HealthTracker(failureThreshold: 2, successThreshold: 1)
        for up in [false, true, false, true, false] { _ = tracker.record([result("a", up: up)]) }
        XCTAssertEqual(tracker.down, [])
    }

    func testEveryExpectedEndpointIsKnownBeforeItsFirstProbe() {
        var tracker = HealthTracker(failureThreshold: 3)
        let targets = [ProbeTarget(url: "http://a/v2/", tls: TLSSettings(), registries: ["x"]), ProbeTarget(url: "https://b/v2/", tls: TLSSettings(), registries: ["x"])]
        tracker.expect(targets)
        XCTAssertEqual(tracker.sorted.map(\.state), [.unknown, .unknown])
        XCTAssertEqual(tracker.sorted.map(\.causeText), ["not probed yet", "not probed yet"])
        _ = tracker.record([result("http://a/v2/", up: true), result("https://b/v2/", up: false)])
        XCTAssertEqual(tracker.sorted.map(\.stateText), ["up", "failing (1/3)"], "a failing endpoint is counted from its first failure")
        tracker.expect(Array(targets.prefix(1)))
        XCTAssertEqual(tracker.sorted.map(\.id), ["http://a/v2/"], "an endpoint gone from the model is forgotten")
    }

    func testALocalFailureNeverCountsAgainstTheMirror() {
        var tracker = HealthTracker(failureThreshold: 1, successThreshold: 1)
        _ = tracker.record([result("a", up: false)])
        XCTAssertEqual(tracker.down, ["a"])
        tracker.markDemoted(["a"])
        XCTAssertEqual(tracker.endpoints["a"]?.state, .demoted)
        for _ in 0..<3 {
            XCTAssertEqual(tracker.record([result("a", up: false, local: true)]), [])
            XCTAssertEqual(tracker.endpoints["a"]?.state, .unknown, "not down, not demoted: the node could not probe it")
            XCTAssertEqual(tracker.endpoints["a"]?.consecutiveFailures, 0)
        }
        XCTAssertEqual(tracker.down, [])
    }

    func testDemotionLeavesDownMirrorsOutButNeverEmptiesANeverContactSource() {
        let good = MirrorEndpoint(scheme: .https, host: "good.example")
        let bad = MirrorEndpoint(scheme: .https, host: "bad.example")
        let model = MirrorModel(registries: [
            Registry(source: .host("docker.io"), mirrors: [bad, good]),
            Registry(source: .host("ghcr.io"), mirrors: [bad], sourcePolicy: .neverContactSource),
        ])
        let (demoted, notes, ids) = HealthFilter.demote(model, down: [ProbeTargets.url(of: bad)])
        XCTAssertEqual(demoted.registries[0].mirrors, [good])
        XCTAssertEqual(demoted.registries[1].mirrors, [bad])
        XCTAssertEqual(notes.count, 2)
        XCTAssertTrue(notes[1].contains("all mirrors are kept"))
        XCTAssertEqual(ids, [ProbeTargets.url(of: bad)])
        XCTAssertEqual(HealthFilter.demote(model, down: []).model, model)
    }
}
