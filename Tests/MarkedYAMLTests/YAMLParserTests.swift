import Diagnostics
import MarkedYAML
import XCTest

final class YAMLParserTests: XCTestCase {
    let file = LocationMapping(file: "t.yaml")

    func testMarksAreOneBased() throws {
        let docs = try YAMLParser.parse("a:\n  b: [x, \"y\"]\n", mapping: file)
        guard case .mapping(let top) = docs[0].root?.content else { return XCTFail("not a mapping") }
        XCTAssertEqual(top[0].key.location, SourceLocation(file: "t.yaml", line: 1, column: 1))
        guard case .mapping(let inner) = top[0].value.content, case .sequence(let items) = inner[0].value.content
        else { return XCTFail("shape") }
        XCTAssertEqual(items[1].location, SourceLocation(file: "t.yaml", line: 2, column: 10))
        XCTAssertEqual(items[1].scalar, YAMLScalar("y", style: .doubleQuoted))
    }

    func testMultiDocument() throws {
        let docs = try YAMLParser.parse("a: 1\n---\n---\nb: 2\n", mapping: file)
        XCTAssertEqual(docs.count, 3)
        XCTAssertEqual(docs[1].root?.isNull, true)
        XCTAssertEqual(docs[2].location.line, 3)
    }

    func testAliasesResolveAndMergeKeysApply() throws {
        let docs = try YAMLParser.parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", mapping: file)
        guard case .mapping(let top) = docs[0].root?.content, case .mapping(let use) = top[1].value.content
        else { return XCTFail("shape") }
        XCTAssertEqual(use.map(\.name), ["y", "x"])
        XCTAssertEqual(use.first { $0.name == "y" }?.value.scalar?.text, "3")
    }

    func testAliasBombIsRefused() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        XCTAssertThrowsError(try YAMLParser.parse(text, mapping: file)) { error in
            let d = error as! Diagnostic
            XCTAssertTrue(d.message.contains("more than 1000000 nodes"), d.message)
        }
    }

    func testOversizeInputIsRefusedBeforeParsing() {
        let limits = YAMLLimits(maxBytes: 10)
        XCTAssertThrowsError(try YAMLParser.parse("a: 123456789\n", mapping: file, limits: limits)) { error in
            XCTAssertEqual((error as! Diagnostic).description, "t.yaml:1:1: file is 13 bytes, larger than the 10-byte limit; refusing to read it")
        }
    }

    func testDuplicateKeyNamesBothPlaces() {
        XCTAssertThrowsError(try YAMLParser.parse("a: 1\nb: 2\na: 3\n", mapping: file)) { error in
            XCTAssertEqual((error as! Diagnostic).description, "t.yaml:3:1: duplicate key \"a\" (first at line 1, column 1)")
        }
    }

    func testSyntaxErrorHasPosition() {
        XCTAssertThrowsError(try YAMLParser.parse("a: [1, 2\nb: 3\n", mapping: file)) { error in
            let d = error as! Diagnostic
            XCTAssertEqual(d.location?.file, "t.yaml")
            XCTAssertTrue(d.message.hasPrefix("YAML syntax error:"), d.message)
        }
    }

    func testUndefinedAlias() {
        XCTAssertThrowsError(try YAMLParser.parse("a: *nope\n", mapping: file)) { error in
            XCTAssertEqual((error as! Diagnostic).description, "t.yaml:1:4: alias *nope names no anchor defined before it")
        }
    }

    func testOffsetMappingPointsIntoOuterFile() throws {
        let mapping = LocationMapping(file: "cm.yaml", lineOffset: 7, columnOffset: 4)
        let docs = try YAMLParser.parse("kind: X\n", mapping: mapping)
        guard case .mapping(let top) = docs[0].root?.content else { return XCTFail("shape") }
        XCTAssertEqual(top[0].value.location, SourceLocation(file: "cm.yaml", line: 8, column: 11))
    }

    func testDeepNestingIsRefused() {
        let text = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        XCTAssertThrowsError(try YAMLParser.parse(text, mapping: file)) { error in
            XCTAssertTrue((error as! Diagnostic).message.hasPrefix("nested deeper than 256"))
        }
    }
}
