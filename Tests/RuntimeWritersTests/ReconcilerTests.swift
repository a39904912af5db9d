import DesiredState
import Foundation
import RuntimeWriters
import XCTest

/// What the host already has changes what the rendered files mean: those cases are reported.
final class ReconcilerTests: ScratchRootTestCase {
    func settings(_ runtimes: [Runtime]) -> AgentSettings {
        var s = AgentSettings()
        s.runtimes = .explicit(runtimes)
        return s
    }

    let model = MirrorModel(registries: [
        Registry(source: .host("registry.example:5000"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example")]),
        Registry(source: .everyRegistry, mirrors: [MirrorEndpoint(scheme: .https, host: "cache.example")]),
        Registry(source: .host("docker.io"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example")]),
    ])

    func testShadowedSpellingsAndDirectoriesThatHideDefaultAreReported() throws {
        try write("/etc/containerd/certs.d/registry.example:5000/ca.crt", "x")
        try write("/etc/containerd/certs.d/ghcr.io/ca.crt", "x")
        let plan = Reconciler(root: root, settings: settings([.containerd])).plan(model)
        let messages = plan.warnings.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("registry.example:5000 is shadowed by registry.example_5000_") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("_default) do not apply to ghcr.io, registry.example:5000") }, "\(messages)")
    }

    func testHostsDirectoryFollowsContainerdConfigPath() throws {
        try write("/etc/containerd/config.toml", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/hosts:/etc/docker/certs.d\"\n")
        let plan = Reconciler(root: root, settings: settings([.containerd])).plan(model)
        XCTAssertEqual(plan.containerdHostsDirectory, "/etc/containerd/hosts")
        XCTAssertTrue(plan.files.allSatisfy { $0.baseDirectory == "/etc/containerd/hosts" })
        XCTAssertTrue(plan.warnings.contains { $0.message.contains("config_path is a list") })
        try write("/etc/containerd/config.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/srv/certs.d\"\n")
        XCTAssertEqual(Reconciler(root: root, settings: settings([.containerd])).plan(model).containerdHostsDirectory, "/srv/certs.d")
    }

    func testCRIODropInReportsWhatItReplacesAndWhatSortsAfterIt() throws {
        try write("/etc/containers/registries.conf", """
            unqualified-search-registries = ["docker.io"]
            [[registry]]
            prefix = "docker.io"
            location = "docker.io"
            [[registry.mirror]]
            location = "old-mirror.example"

            """)
        try write("/etc/containers/registries.conf.d/zz-late.conf", "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n")
        let plan = Reconciler(root: root, settings: settings([.crio])).plan(model)
        let messages = plan.warnings.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("replaces [[registry]] prefix \"docker.io\"") && $0.contains("dropping: mirrors old-mirror.example") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("zz-late.conf sorts after 99-mirror-agent.conf and replaces its tables for docker.io") }, "\(messages)")
    }

    func testALaterDropInWithoutOurPrefixesIsNoWarning() throws {
        // containers-common ships registries.conf.d/shortnames.conf ([aliases] only): it sorts
        // after 99-mirror-agent.conf but changes nothing of ours.
        try write("/etc/containers/registries.conf.d/shortnames.conf", "[aliases]\n  \"nginx\" = \"docker.io/library/nginx\"\n")
        try write("/etc/containers/registries.conf.d/zz-other.conf", "[[registry]]\nprefix = \"other.example\"\nlocation = \"other.example\"\n")
        let messages = Reconciler(root: root, settings: settings([.crio])).plan(model).warnings.map(\.message)
        XCTAssertFalse(messages.contains { $0.contains("sorts after") }, "\(messages)")
    }

    func testAutoDetectsRuntimesFromTheirConfiguration() throws {
        XCTAssertEqual(AgentSettings().selectedRuntimes(root: root), [])
        try write("/etc/crio/crio.conf", "")
        XCTAssertEqual(AgentSettings().selectedRuntimes(root: root), [.crio])
        try write("/etc/containerd/config.toml", "")
        XCTAssertEqual(AgentSettings().selectedRuntimes(root: root), [.containerd, .crio])
    }
}
