import Foundation
import RuntimeWriters
import XCTest

/// The lock around read-modify-write of the pending-actions record (the daemon and `apply`
/// both update it): no update is lost, and waiting for it is bounded.
final class FileLockTests: ScratchRootTestCase {
    var counter: String { scratch + "/state/counter" }
    var lock: String { scratch + "/state/counter.lock" }

    /// Read, wait a little, write back: without the lock two workers overwrite each other's
    /// increments (this test lost most of them with the lock taken out); with it none is lost.
    func testConcurrentReadModifyWriteLosesNoUpdate() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/state", withIntermediateDirectories: true)
        try "0".write(toFile: counter, atomically: true, encoding: .utf8)
        let rounds = 60
        let path = counter, lockPath = lock
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            for _ in 0..<rounds {
                try? FileLock.withExclusive(lockPath) {
                    let value = Int((try? String(contentsOfFile: path, encoding: .utf8)) ?? "") ?? -1000
                    usleep(300)
                    try? String(value + 1).write(toFile: path, atomically: true, encoding: .utf8)
                }
            }
        }
        XCTAssertEqual(try String(contentsOfFile: counter, encoding: .utf8), String(3 * rounds))
    }

    /// A holder that does not let go makes the other wait at most its timeout, then fail.
    func testWaitingIsBounded() throws {
        let lockPath = lock
        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? FileLock.withExclusive(lockPath) {
                held.signal()
                _ = release.wait(timeout: .now() + 10)
            }
            done.signal()
        }
        XCTAssertEqual(held.wait(timeout: .now() + 5), .success)
        let start = Date()
        XCTAssertThrowsError(try FileLock.withExclusive(lockPath, timeoutMilliseconds: 200) {}) { error in
            XCTAssertTrue("\(error)".contains("still locked by another mirror-agent after 200 ms"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        release.signal()
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        // Released: the next one gets it at once, and the lock file is 0600 in the created directory.
        XCTAssertEqual(try FileLock.withExclusive(lockPath, timeoutMilliseconds: 0) { 42 }, 42)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: lockPath)[.posixPermissions] as? Int, 0o600)
    }

    /// A FIFO (or a symlink) in place of the lock file is refused, never waited on.
    func testAFIFOOrSymlinkInPlaceOfTheLockFileIsRefused() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/state", withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(lock, 0o600), 0)
        XCTAssertThrowsError(try FileLock.withExclusive(lock) {}) { XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)") }
        try FileManager.default.removeItem(atPath: lock)
        XCTAssertEqual(symlink(scratch + "/elsewhere", lock), 0)
        XCTAssertThrowsError(try FileLock.withExclusive(lock) {})
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/elsewhere"))
    }
}
