import DesiredState
import Foundation
import XCTest

@testable import RuntimeWriters

/// CRI-O's settings read in CRI-O's order (crio.conf, then crio.conf.d walked in lexical order,
/// later wins per key), and what the agent does after the drop-in changed.
final class CRIOSettingsTests: ScratchRootTestCase {
    struct Case {
        var name: String
        var files: [String: String]
        var auto: Bool
        var setIn: String? = nil
        var problems = 0
    }

    let auto = "[crio.image]\nauto_reload_registries = true\n"
    let manual = "[crio.image]\nauto_reload_registries = false\n"

    func testReaderFollowsCRIOsOrder() throws {
        let cases: [Case] = [
            Case(name: "nothing", files: [:], auto: false),
            Case(name: "main file", files: ["/etc/crio/crio.conf": auto], auto: true, setIn: "/etc/crio/crio.conf"),
            Case(name: "drop-in over main", files: ["/etc/crio/crio.conf": auto, "/etc/crio/crio.conf.d/10-off.conf": manual], auto: false, setIn: "/etc/crio/crio.conf.d/10-off.conf"),
            Case(
                name: "lexical: 20 after 10", files: ["/etc/crio/crio.conf.d/20-on.conf": auto, "/etc/crio/crio.conf.d/10-off.conf": manual], auto: true,
                setIn: "/etc/crio/crio.conf.d/20-on.conf"),
            Case(
                name: "byte order: upper case sorts first", files: ["/etc/crio/crio.conf.d/a.conf": manual, "/etc/crio/crio.conf.d/B.conf": auto], auto: false,
                setIn: "/etc/crio/crio.conf.d/a.conf"),
            Case(
                name: "a file without the key keeps the earlier value",
                files: ["/etc/crio/crio.conf.d/10-on.conf": auto, "/etc/crio/crio.conf.d/20-other.conf": "[crio.runtime]\nlog_level = \"debug\"\n"], auto: true,
                setIn: "/etc/crio/crio.conf.d/10-on.conf"),
            Case(name: "no suffix filter (filepath.Walk)", files: ["/etc/crio/crio.conf.d/50-on": auto], auto: true, setIn: "/etc/crio/crio.conf.d/50-on"),
            Case(name: "subdirectory walked in place", files: ["/etc/crio/crio.conf.d/10/x.conf": auto, "/etc/crio/crio.conf.d/05.conf": manual], auto: true, setIn: "/etc/crio/crio.conf.d/10/x.conf"),
            Case(name: "dotted key", files: ["/etc/crio/crio.conf": "crio.image.auto_reload_registries = true\n"], auto: true, setIn: "/etc/crio/crio.conf"),
            Case(name: "other table", files: ["/etc/crio/crio.conf": "[crio.runtime]\nauto_reload_registries = true\n"], auto: false),
            Case(name: "broken file reported, others kept", files: ["/etc/crio/crio.conf": auto, "/etc/crio/crio.conf.d/10.conf": "[crio.image\n"], auto: true, setIn: "/etc/crio/crio.conf", problems: 1),
            Case(name: "not a boolean", files: ["/etc/crio/crio.conf": "[crio.image]\nauto_reload_registries = \"true\"\n"], auto: false, problems: 1),
        ]
        for c in cases {
            try? FileManager.default.removeItem(atPath: root.path("/etc/crio"))
            for (path, text) in c.files { try write(path, text) }
            let settings = CRIOSettings.load(root: root)
            XCTAssertEqual(settings.autoReloadRegistries, c.auto, c.name)
            XCTAssertEqual(settings.autoReloadSetIn, c.setIn.map { root.path($0) }, c.name)
            XCTAssertEqual(settings.problems.count, c.problems, "\(c.name): \(settings.problems)")
        }
    }

    func testVersionFromOutput() {
        let cases: [(String, Int?, Int?)] = [
            ("crio version 1.30.0\n", 1, 30),
            ("INFO[0000] Starting CRI-O\nVersion:        1.29.4\nGitCommit:  abc\n", 1, 29),
            ("crio version v1.31.2-dev\n", 1, 31),
            ("something else\n", nil, nil),
        ]
        for (output, major, minor) in cases {
            let v = CRIOSettings.version(fromOutput: output)
            XCTAssertEqual(v?.major, major, output)
            XCTAssertEqual(v?.minor, minor, output)
        }
    }

    func testDecision() {
        var on = CRIOSettings()
        on.autoReloadRegistries = true
        on.autoReloadSetIn = "/etc/crio/crio.conf.d/10-auto.conf"
        let ours = "/etc/containers/registries.conf.d/99-mirror-agent.conf"
        struct D {
            var name: String
            var settings: CRIOSettings
            var dropIn: String
            var version: (major: Int, minor: Int)?
            var changed: UInt64?
            var started: UInt64?
            var selfReloads: Bool
        }
        let cases: [D] = [
            D(name: "default settings", settings: CRIOSettings(), dropIn: ours, version: nil, changed: nil, started: nil, selfReloads: false),
            D(name: "auto, version unknown", settings: on, dropIn: ours, version: nil, changed: 100, started: 200, selfReloads: true),
            D(name: "auto, 1.30", settings: on, dropIn: ours, version: (1, 30), changed: 100, started: 200, selfReloads: true),
            D(name: "auto, 1.29 has no watcher", settings: on, dropIn: ours, version: (1, 29), changed: 100, started: 200, selfReloads: false),
            D(name: "auto, 2.0", settings: on, dropIn: ours, version: (2, 0), changed: 100, started: 200, selfReloads: true),
            D(name: "auto, drop-in outside the watched directory", settings: on, dropIn: "/etc/containers/other.d/99.conf", version: nil, changed: nil, started: nil, selfReloads: false),
            D(name: "auto set after crio started", settings: on, dropIn: ours, version: (1, 30), changed: 300, started: 200, selfReloads: false),
            D(name: "auto, crio not running (start 0)", settings: on, dropIn: ours, version: nil, changed: 300, started: 0, selfReloads: true),
        ]
        for d in cases {
            let decision = CRIOReloadDecision.decide(settings: d.settings, dropInPath: d.dropIn, version: d.version, settingChangedAt: d.changed, crioStartedAt: d.started)
            switch decision {
            case .selfReloads(let why):
                XCTAssertTrue(d.selfReloads, d.name)
                XCTAssertTrue(why.contains("crio reloads registries itself (auto_reload_registries"), why)
                XCTAssertTrue(why.contains("10-auto.conf"), why)
            case .reload(let note):
                XCTAssertFalse(d.selfReloads, d.name)
                XCTAssertEqual(note == nil, !d.settings.autoReloadRegistries, "\(d.name): \(note ?? "nil")")
            }
        }
    }
}
