import DesiredState
import Foundation
import HealthProbe
import XCTest

final class HealthTrackerTests: XCTestCase {
    func result(_ url: String, up: Bool) -> ProbeResult {
        ProbeResult(url: url, registries: ["docker.io"], up: up, status: up ? 200 : nil, latencySeconds: 0.01, error: up ? nil : "connection refused", checkedAt: Date())
    }

    func testDownAfterNFailuresUpAfterMSuccessesEachLoggedOnce() {
        var tracker = HealthTracker(failureThreshold: 3, successThreshold: 2)
        XCTAssertEqual(tracker.record([result("a", up: true)]), [], "unknown to up is not news")
        XCTAssertEqual(tracker.record([result("a", up: false)]), [])
        XCTAssertEqual(tracker.record([result("a", up: false)]), [])
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

    func testDemotionLeavesDownMirrorsOutButNeverEmptiesANeverContactSource() {
        let good = MirrorEndpoint(scheme: .https, host: "good.example")
        let bad = MirrorEndpoint(scheme: .https, host: "bad.example")
        let model = MirrorModel(registries: [
            Registry(source: .host("docker.io"), mirrors: [bad, good]),
            Registry(source: .host("ghcr.io"), mirrors: [bad], sourcePolicy: .neverContactSource),
        ])
        let (demoted, notes) = HealthFilter.demote(model, down: [ProbeTargets.url(of: bad)])
        XCTAssertEqual(demoted.registries[0].mirrors, [good])
        XCTAssertEqual(demoted.registries[1].mirrors, [bad])
        XCTAssertEqual(notes.count, 2)
        XCTAssertTrue(notes[1].contains("all mirrors are kept"))
        XCTAssertEqual(HealthFilter.demote(model, down: []).0, model)
    }
}
