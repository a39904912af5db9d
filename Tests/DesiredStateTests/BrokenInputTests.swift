import DesiredState
import Diagnostics
import Foundation
import XCTest

/// A corpus of broken inputs (Fixtures/broken), each with the exact `line:column: message` it
/// must produce (Fixtures/broken-expected.txt: `NAME LINE:COLUMN: MESSAGE`, `{file}` standing for
/// the file's own path inside messages).
final class BrokenInputTests: XCTestCase {
    func testEveryBrokenInputGivesItsExactError() throws {
        let fixtures = try XCTUnwrap(Bundle.module.resourcePath) + "/Fixtures"
        let expectations = try String(contentsOfFile: fixtures + "/broken-expected.txt", encoding: .utf8)
            .split(separator: "\n").map { line -> (String, String) in
                let space = line.firstIndex(of: " ")!
                return (String(line[..<space]), String(line[line.index(after: space)...]))
            }
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures + "/broken").filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 30)
        XCTAssertEqual(Set(expectations.map(\.0)), Set(names), "every broken input has an expectation and vice versa")
        for name in names {
            let path = fixtures + "/broken/" + name
            let result = load([path])
            XCTAssertFalse(result.isValid, "\(name) was accepted")
            XCTAssertEqual(result.model, MirrorModel(), "\(name): an invalid input yields no model")
            let expected = expectations.filter { $0.0 == name }.map { path + ":" + $0.1.replacingOccurrences(of: "{file}", with: path) }
            XCTAssertEqual(result.errorTexts, expected, name)
        }
    }
}
