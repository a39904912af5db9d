import DesiredState
import Foundation
import XCTest

/// Inputs the fuzzer (fuzz/) once crashed on, kept as regression tests: each must load without
/// crashing, and anything rejected must say where.
final class FuzzRegressionTests: XCTestCase {
    func testEveryKeptCrasherLoads() throws {
        let directory = repositoryRoot + "/fuzz/crashers"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted() ?? []
        XCTAssertFalse(names.isEmpty, "the crashers found so far are kept in fuzz/crashers")
        for name in names {
            let result = load([directory + "/" + name])
            XCTAssertTrue(result.diagnostics.errors.allSatisfy { $0.location != nil }, name)
        }
    }

    /// The first one: every registry ("*") left without mirrors once its only mirror was invalid.
    func testEveryRegistrySourceWithNoValidMirror() {
        let result = load(text: "apiVersion: mirror-agent/v1\nkind: MirrorSet\nspec:\n  registries:\n  - source: \"*\"\n    mirrors: []\n")
        XCTAssertTrue(result.isValid)
        XCTAssertEqual(result.model.registries.map(\.source), [.everyRegistry])
        XCTAssertEqual(result.model.registries[0].mirrors, [])
    }
}
