import AgentCore
import XCTest

/// The posix_spawn runner the agent uses for `containerd --version`, `config dump` and `crio --version`.
final class SubprocessTests: XCTestCase {
    func testOutputAndExitStatusAreTheProgramsOwn() throws {
        let run = try XCTUnwrap(Subprocess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], captureStandardError: true))
        XCTAssertEqual(String(decoding: run.standardOutput, as: UTF8.self), "out\n")
        XCTAssertEqual(String(decoding: run.standardError, as: UTF8.self), "err\n")
        XCTAssertEqual(run.exitStatus, 3)
        XCTAssertFalse(run.timedOut)
    }

    func testTheTimeLimitHoldsForAProgramThatClosedItsOutput() throws {
        // Closes stdout and stderr, then runs on: without the limit after the reads end, the
        // wait would last the whole 30 s and report a normal exit.
        let run = try XCTUnwrap(Subprocess.run("/bin/sh", ["-c", "exec >&- 2>&-; exec sleep 30"], captureStandardError: true, timeout: .milliseconds(300)))
        XCTAssertTrue(run.timedOut)
        XCTAssertNil(run.exitStatus, "killed, not exited")
    }

    func testTheTimeLimitHoldsForAProgramThatKeepsItsOutputOpen() throws {
        let run = try XCTUnwrap(Subprocess.run("/bin/sh", ["-c", "exec sleep 30"], timeout: .milliseconds(300)))
        XCTAssertTrue(run.timedOut)
        XCTAssertNil(run.exitStatus)
    }

    func testAProgramThatEndsInTimeIsNotTimedOut() throws {
        let run = try XCTUnwrap(Subprocess.run("/bin/sh", ["-c", "exec >&-; exit 0"], timeout: .seconds(20)))
        XCTAssertFalse(run.timedOut)
        XCTAssertEqual(run.exitStatus, 0)
    }

    func testStandardInputIsEmpty() throws {
        let run = try XCTUnwrap(Subprocess.run("/bin/sh", ["-c", "wc -c"], timeout: .seconds(20)))
        XCTAssertEqual(String(decoding: run.standardOutput, as: UTF8.self).filter { !$0.isWhitespace }, "0")
    }
}
