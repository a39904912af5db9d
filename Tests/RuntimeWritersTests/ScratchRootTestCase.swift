import DesiredState
import Foundation
import XCTest

/// A test case with its own empty host root under the temporary directory, removed afterwards.
class ScratchRootTestCase: XCTestCase {
    var scratch: String!
    var root: HostRoot!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "\(type(of: self))-\(UUID().uuidString)"
        root = HostRoot(scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: scratch) }

    /// Writes a file at a host path under the root, creating its directories.
    func write(_ hostPath: String, _ text: String) throws {
        let path = root.path(hostPath)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
