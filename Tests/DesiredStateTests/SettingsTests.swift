import DesiredState
import Diagnostics
import XCTest

final class SettingsTests: XCTestCase {
    func parse(_ text: String) -> (AgentSettings, DiagnosticList) { AgentSettings.parse(Array(text.utf8), file: "agent.yaml") }

    func testDefaultsWhenEmpty() {
        let (settings, diagnostics) = parse("# nothing\n")
        XCTAssertEqual(settings, AgentSettings())
        XCTAssertFalse(diagnostics.hasErrors)
        XCTAssertEqual(settings.runtimes, .auto)
        XCTAssertEqual(settings.crio.dropIn, "/etc/containers/registries.conf.d/99-mirror-agent.conf")
        XCTAssertEqual(settings.stateDir, "/var/lib/mirror-agent")
    }

    func testEveryKey() {
        let (settings, diagnostics) = parse("""
            runtimes: [crio, containerd]
            insecureRegistries: ["Mirror.Example:5000", "10.0.0.1"]
            adopt: true
            stateDir: /srv/state
            containerd: {configFile: /etc/c.toml, hostsDir: /etc/h, dialTimeout: 200ms}
            crio: {registriesConf: /etc/r.conf, dropIn: /etc/containers/registries.conf.d/zz.conf}
            """)
        XCTAssertEqual(diagnostics.items, [])
        XCTAssertEqual(settings.runtimes, .explicit([.crio, .containerd]))
        XCTAssertEqual(settings.insecureRegistries, ["mirror.example:5000", "10.0.0.1"])
        XCTAssertTrue(settings.adopt)
        XCTAssertEqual(settings.stateDir, "/srv/state")
        XCTAssertEqual(settings.containerd.configFile, "/etc/c.toml")
        XCTAssertEqual(settings.containerd.hostsDir, "/etc/h")
        XCTAssertEqual(settings.containerd.dialTimeout, "200ms")
        XCTAssertEqual(settings.crio.registriesConf, "/etc/r.conf")
        XCTAssertEqual(settings.crio.dropIn, "/etc/containers/registries.conf.d/zz.conf")
    }

    func testErrorsNameTheirPlace() {
        XCTAssertEqual(parse("runtime: auto\n").1.errors.map(\.description), ["agent.yaml:1:1: unknown field \"runtime\" in agent.yaml; did you mean \"runtimes\"?"])
        XCTAssertEqual(parse("runtimes: [containrd]\n").1.errors.map(\.description), ["agent.yaml:1:12: unknown runtime \"containrd\"; did you mean \"containerd\"?"])
        XCTAssertEqual(parse("stateDir: var/lib\n").1.errors.map(\.description), ["agent.yaml:1:11: agent.yaml.stateDir must be an absolute path without \"..\""])
        XCTAssertEqual(parse("crio: {dropIn: /etc/x.toml}\n").1.errors.map(\.description), ["agent.yaml:1:16: crio.dropIn must end in \".conf\": containers/image reads no other drop-ins"])
        XCTAssertEqual(parse("containerd: {dialTimeout: soon}\n").1.errors.map(\.description), ["agent.yaml:1:27: containerd.dialTimeout \"soon\" is not a duration such as 200ms, 2s or 1m30s"])
        XCTAssertEqual(parse("adopt: maybe\n").1.errors.map(\.description), ["agent.yaml:1:8: agent.yaml.adopt must be true or false, found the value \"maybe\""])
    }

    func testDurations() {
        XCTAssertEqual(Duration.parse("200ms"), .milliseconds(200))
        XCTAssertEqual(Duration.parse("1m30s"), .seconds(90))
        XCTAssertEqual(Duration.parse("1.5s"), .milliseconds(1500))
        XCTAssertNil(Duration.parse("5"))
        XCTAssertNil(Duration.parse(""))
    }
}

/// The shipped agent.yaml documents every default: uncommented, it must parse to exactly the
/// built-in defaults (and commented, as shipped, too).
final class ShippedSettingsTests: XCTestCase {
    func testShippedFileStatesTheDefaults() throws {
        let shipped = try String(contentsOfFile: repositoryRoot + "/packaging/agent.yaml", encoding: .utf8)
        let asShipped = AgentSettings.parse(Array(shipped.utf8), file: "agent.yaml")
        XCTAssertEqual(asShipped.1.items, [])
        XCTAssertEqual(asShipped.0, AgentSettings())
        // "#key:" and "#  key:" lines are settings; "# text" lines are prose.
        let uncommented = shipped.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            if line.hasPrefix("#"), let next = line.dropFirst().first, next != " " { return line.dropFirst() }
            if line.hasPrefix("#  ") { return line.dropFirst() }
            return line
        }.joined(separator: "\n")
        let (settings, diagnostics) = AgentSettings.parse(Array(uncommented.utf8), file: "agent.yaml")
        XCTAssertEqual(diagnostics.items, [], uncommented)
        var expected = AgentSettings()
        expected.runtimes = .auto
        XCTAssertEqual(settings, expected)
        XCTAssertTrue(uncommented.contains("\nruntimes: auto"), "the defaults really were uncommented")
    }
}
