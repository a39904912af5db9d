import RuntimeActions
import XCTest

/// Issue 17, item 1: a complete change is reconciled at once, a burst still gives at most two
/// passes, and a partial change waits as a debounce does.
final class PassTimingTests: XCTestCase {
    func ms(_ n: Int) -> Duration { .milliseconds(n) }

    func testACompleteChangeAfterQuietRunsNow() {
        var timing = PassTiming(window: ms(200))
        XCTAssertEqual(timing.changed(.complete, at: ms(0)), .now, "nothing ran yet")
        timing.passEnded(at: ms(5))
        XCTAssertEqual(timing.changed(.complete, at: ms(205)), .now, "a window after the last pass")
        timing.passEnded(at: ms(210))
        XCTAssertEqual(timing.changed(.complete, at: ms(5_000)), .now)
    }

    func testACompleteChangeInsideTheWindowWaitsForQuiet() {
        var timing = PassTiming(window: ms(200))
        timing.passEnded(at: ms(100))
        XCTAssertEqual(timing.changed(.complete, at: ms(150)), .at(ms(350)))
        XCTAssertEqual(timing.changed(.complete, at: ms(250)), .at(ms(450)), "the burst goes on: its pass waits for the end")
        XCTAssertEqual(timing.changed(.complete, at: ms(1_000)), .at(ms(1_150)), "a burst waits five windows at most")
        timing.passEnded(at: ms(1_160))
        XCTAssertEqual(timing.changed(.complete, at: ms(1_400)), .now)
    }

    func testAKeptUpBurstStillGetsAPassPerMaxWait() {
        var timing = PassTiming(window: ms(200))
        timing.passEnded(at: .zero)
        var decision = PassTiming.Decision.now
        for t in stride(from: 100, through: 2_000, by: 100) { decision = timing.changed(.complete, at: ms(t)) }
        XCTAssertEqual(decision, .at(ms(1_100)))
        XCTAssertEqual(timing.changed(.partial, at: ms(2_050)), .at(ms(1_100)), "a partial change does not push it past the cap either")
    }

    func testAPartialChangeIsADebounceThatACompleteOneCutsShort() {
        var timing = PassTiming(window: ms(200))
        timing.passEnded(at: ms(0))
        // A temporary file written at 1 s, then renamed into place at 1.003 s.
        XCTAssertEqual(timing.changed(.partial, at: ms(1_000)), .at(ms(1_200)))
        XCTAssertEqual(timing.changed(.partial, at: ms(1_100)), .at(ms(1_300)), "each partial change restarts the quiet time")
        XCTAssertEqual(timing.changed(.complete, at: ms(1_103)), .now)
    }

    /// The burst of the issue: one tool writes ten files, each a create (partial) and a close
    /// (complete), 3 ms apart, and each pass takes 20 ms. Events that arrive during a pass are
    /// read when it ends, as the daemon's loop does.
    func testTenFilesFromOneToolGiveAtMostTwoPasses() {
        for window in [ms(50), ms(200), ms(1_000)] {
            XCTAssertEqual(passes(window: window, files: 10, spacing: ms(3), passTakes: ms(20)), 2, "window \(window)")
        }
        // Slower than the window: one pass per window of the burst, still far fewer than ten.
        XCTAssertLessThanOrEqual(passes(window: ms(50), files: 10, spacing: ms(30), passTakes: ms(20)), 5)
    }

    func testASingleDropIsOnePass() {
        XCTAssertEqual(passes(window: ms(200), files: 1, spacing: ms(3), passTakes: ms(20)), 1)
    }

    func testEventKinds() {
        let create: UInt32 = 0x100, attrib: UInt32 = 0x4
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.closeWrite, read: true), .complete)
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.delete, read: true), .complete)
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.movedFrom, read: true), .complete)
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.movedTo, read: true), .complete, "a rename into place, or a ConfigMap's ..data swap")
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.movedTo, read: false), .partial, "a temporary file renamed to another temporary name")
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.queueOverflow, read: false), .complete)
        XCTAssertEqual(ChangeKind.of(mask: ChangeKind.closeWrite, read: false), .partial, "a temporary file before its rename")
        XCTAssertEqual(ChangeKind.of(mask: create, read: true), .partial, "content may follow")
        XCTAssertEqual(ChangeKind.of(mask: attrib, read: true), .partial)
    }

    /// B1's tail (issue 17): a tool writes `.x.tmp.tmp`, renames it to `.x.tmp`, then renames
    /// that to `x.yaml` (Python's write-then-rename helper called on a temporary name). When
    /// the daemon woke between the two renames, the first rename ran a pass that read nothing
    /// new, and the real rename, microseconds later, fell inside that pass's burst window and
    /// waited 200 ms (1 drop in 200). A rename to a name the agent does not read publishes
    /// nothing, so it must not run a pass.
    func testARenameBetweenTemporaryNamesDoesNotMakeThePublishingRenameWait() {
        var timing = PassTiming(window: ms(200))
        timing.passEnded(at: .zero)
        let toHidden = ChangeKind.of(mask: ChangeKind.movedFrom | ChangeKind.movedTo, read: false)
        // The daemon woke between the renames: the first is a batch of its own.
        if timing.changed(toHidden, at: ms(1_000)) == .now { timing.passEnded(at: ms(1_002)) }
        let toRead = ChangeKind.of(mask: ChangeKind.movedTo, read: true)
        XCTAssertEqual(timing.changed(toRead, at: ms(1_002)), .now, "the publishing rename runs its pass at once")
    }

    /// Simulates the loop: returns how many passes the burst caused.
    func passes(window: Duration, files: Int, spacing: Duration, passTakes: Duration) -> Int {
        var timing = PassTiming(window: window)
        timing.passEnded(at: .zero)  // the pass at start
        let start = ms(10_000)
        var events: [(Duration, PassTiming.Change)] = []
        for i in 0..<files {
            let t = start + spacing * i
            events.append((t, .partial))
            events.append((t + ms(1), .complete))
        }
        var now = start
        var due: Duration?
        var count = 0
        var next = 0
        while next < events.count || due != nil {
            // Everything that arrived by now is read as one batch.
            var batch: PassTiming.Change?
            while next < events.count && events[next].0 <= now {
                batch = batch == .complete ? .complete : events[next].1
                next += 1
            }
            if let batch {
                switch timing.changed(batch, at: now) {
                case .now: due = now
                case .at(let t): due = t
                }
            }
            if let d = due, d <= now {
                count += 1
                now += passTakes
                timing.passEnded(at: now)
                due = nil
                continue
            }
            // Sleep until the next event or the due pass.
            let wake = [due, next < events.count ? events[next].0 : nil].compactMap { $0 }.min()!
            now = max(now, wake)
        }
        return count
    }
}
