import DesiredState
import Diagnostics
import XCTest

final class MergeTests: XCTestCase {
    func idms(_ name: String, _ entries: [(String, [String], String?)]) -> String {
        var text = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: \(name)}\nspec:\n  imageDigestMirrors:\n"
        for (source, mirrors, policy) in entries {
            text += "  - source: \(source)\n    mirrors: [\(mirrors.joined(separator: ", "))]\n"
            if let policy { text += "    mirrorSourcePolicy: \(policy)\n" }
        }
        return text
    }

    func mirrors(_ text: String, _ source: String) throws -> [String] {
        let result = load(text: text)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        return try result.registry(source).mirrors.map(\.host)
    }

    func testListsMergeKeepingEachOrderWhateverTheDocumentOrder() throws {
        let a = idms("a", [("quay.io", ["a.example", "b.example"], nil)])
        let b = idms("b", [("quay.io", ["b.example", "c.example"], nil)])
        XCTAssertEqual(try mirrors(a + "---\n" + b, "quay.io"), ["a.example", "b.example", "c.example"])
        XCTAssertEqual(try mirrors(b + "---\n" + a, "quay.io"), ["a.example", "b.example", "c.example"])
    }

    func testUnconstrainedMirrorsAreOrderedLexically() throws {
        let a = idms("a", [("quay.io", ["z.example", "y.example"], nil)])
        let b = idms("b", [("quay.io", ["m.example"], nil)])
        // z before y (a's order); m is free and sorts first among the ready ones.
        XCTAssertEqual(try mirrors(a + "---\n" + b, "quay.io"), ["m.example", "z.example", "y.example"])
        XCTAssertEqual(try mirrors(b + "---\n" + a, "quay.io"), ["m.example", "z.example", "y.example"])
    }

    func testEntryOrderInsideOneDocumentDoesNotMatter() throws {
        let one = idms("a", [("quay.io", ["b.example"], nil), ("quay.io", ["a.example"], nil)])
        let two = idms("a", [("quay.io", ["a.example"], nil), ("quay.io", ["b.example"], nil)])
        XCTAssertEqual(try mirrors(one, "quay.io"), try mirrors(two, "quay.io"))
    }

    func testSingleListKeepsItsOwnOrder() throws {
        XCTAssertEqual(try mirrors(idms("a", [("quay.io", ["z.example", "a.example", "m.example"], nil)]), "quay.io"), ["z.example", "a.example", "m.example"])
    }

    func testDigestAndTagSetsForTheSameMirrorGiveAll() throws {
        let text = idms("d", [("quay.io", ["m.example"], nil)]) + """
            ---
            apiVersion: config.openshift.io/v1
            kind: ImageTagMirrorSet
            spec:
              imageTagMirrors:
              - source: quay.io
                mirrors: [m.example, t.example]

            """
        let result = load(text: text)
        let registry = try result.registry("quay.io")
        XCTAssertEqual(registry.mirrors.map(\.host), ["m.example", "t.example"])
        XCTAssertEqual(registry.mirrors.map(\.pullFrom), [.all, .tagOnly])
        XCTAssertEqual(registry.mirrors.map(\.capabilities), [[.pull, .resolve], [.pull, .resolve]])
        XCTAssertEqual(registry.mirrors[0].origins.count, 2)
    }

    func testSetWhoseOnlyMirrorIsTheSourceIsIgnored() throws {
        let result = load(text: idms("a", [("quay.io", ["quay.io"], nil), ("docker.io", ["m.example"], nil)]))
        XCTAssertTrue(result.isValid)
        XCTAssertEqual(result.model.registries.map(\.source.description), ["docker.io"])
        XCTAssertEqual(result.diagnostics.warnings.map(\.description), ["t.yaml:6:13: warning: ignored: the only mirror of quay.io is the source itself"])
    }

    func testOmittedPolicyConflictsWithNeverContactSource() throws {
        let text = idms("a", [("quay.io", ["m.example"], "NeverContactSource")]) + "---\nmirrors:\n  quay.io:\n    endpoint: [https://m2.example]\n"
        let result = load(text: text)
        XCTAssertEqual(
            result.errorTexts,
            ["t.yaml:11:3: conflicting mirrorSourcePolicy for source quay.io: NeverContactSource at t.yaml:8:25 and AllowContactingSource at t.yaml:11:3 (an omitted policy means AllowContactingSource)"])
    }

    func testDialectsMergeAcrossFiles() throws {
        let k3s = load([example("k3s-registries.yaml"), example("vkdr-mirror-registry.yaml")])
        XCTAssertTrue(k3s.isValid, "\(k3s.errorTexts)")
        // docker.io: [mirror-a, 10.20.0.15] and [host.k3d.internal:6000]; the free one sorts first by identity.
        XCTAssertEqual(
            try k3s.registry("docker.io").mirrors.map(\.displayURL),
            ["http://host.k3d.internal:6000", "https://mirror-a.corp.example:5000", "http://10.20.0.15:6000"])
    }

    /// runtime-utils' own test "Source included in mirrors": the source listed inside a set
    /// stays a mirror; only as the (implied) last entry is it the upstream.
    func testSourceListedAmongMirrorsStaysWhereItIs() throws {
        let text = idms("a", [("quay.io", ["z1.example", "quay.io", "y2.example"], nil), ("quay.io", ["quay.io", "y2.example", "x3.example"], nil)])
        XCTAssertEqual(try mirrors(text, "quay.io"), ["z1.example", "quay.io", "y2.example", "x3.example"])
    }

    /// runtime-utils' topo.go tests: AB,BC,CD,DA -> ABCD (a cycle is broken at the lexically
    /// smallest node) and AB,AC,AD -> ABCD.
    func testCyclesAreBrokenLexicallyWithAWarning() throws {
        let text = idms("a", [("quay.io", ["a.example", "b.example"], nil), ("quay.io", ["b.example", "c.example"], nil), ("quay.io", ["c.example", "d.example"], nil), ("quay.io", ["d.example", "a.example"], nil)])
        let result = load(text: text)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(try result.registry("quay.io").mirrors.map(\.host), ["a.example", "b.example", "c.example", "d.example"])
        XCTAssertTrue(result.diagnostics.warnings.contains { $0.message.contains("contradict each other") })
        let fan = idms("a", [("quay.io", ["a.example", "b.example"], nil), ("quay.io", ["a.example", "c.example"], nil), ("quay.io", ["a.example", "d.example"], nil)])
        XCTAssertEqual(try mirrors(fan, "quay.io"), ["a.example", "b.example", "c.example", "d.example"])
    }

    func testOpenShiftSetWithNoMirrorsIsIgnoredWithItsPolicy() throws {
        let text = idms("a", [("quay.io", [], "NeverContactSource")]) + "---\n" + idms("b", [("quay.io", ["m.example"], nil)])
        let result = load(text: text)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(try result.registry("quay.io").sourcePolicy, .allowContactingSource)
    }
}
