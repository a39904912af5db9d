import DesiredState
import Diagnostics
import Foundation
import RuntimeWriters
import XCTest

/// Issue 13, items 1-8: the inputs people paste (k3s registries.yaml, OpenShift IDMS) mean what
/// they mean in k3s, containerd and OpenShift. Each test here failed on the code before the fix.
final class ParityItemTests: ScratchRootTestCase {
    func loaded(_ text: String, settings: AgentSettings = AgentSettings()) -> DesiredStateLoader.Result {
        DesiredStateLoader.load(text: text, file: "/etc/mirror-agent/mirrors.yaml", root: HostRoot("/nonexistent-root"), settings: settings)
    }

    /// hosts.toml files by directory name, and the CRI-O drop-in.
    func render(_ text: String, settings: AgentSettings = AgentSettings()) -> (containerd: [String: String], crio: String, result: DesiredStateLoader.Result) {
        let result = loaded(text, settings: settings)
        XCTAssertTrue(result.isValid, "\(result.diagnostics.errors)")
        var files: [String: String] = [:]
        for file in ContainerdHostsRenderer(hostsDirectory: "/etc/containerd/certs.d", plainHTTPHosts: Set(settings.insecureRegistries)).render(result.model).files {
            files[String(file.relativePath.dropLast("/hosts.toml".count))] = file.contents
        }
        let crio = CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf").render(result.model).files.first?.contents ?? ""
        return (files, crio, result)
    }

    func mirrors(_ result: DesiredStateLoader.Result, _ source: String) -> [String] {
        result.model.registries.first { $0.source.description == source }?.mirrors.map(\.displayURL) ?? ["<no registry \(source)>"]
    }

    // 1. The k3d docs' own example: a plain-HTTP endpoint on the registry's own host.
    func testItem1PlainHTTPEndpointOnTheRegistrysOwnHostIsKept() {
        let (files, _, result) = render("""
            mirrors:
              "my.company.registry:5000":
                endpoint:
                  - http://my.company.registry:5000
            """)
        XCTAssertEqual(mirrors(result, "my.company.registry:5000"), ["http://my.company.registry:5000"])
        let file = files["my.company.registry_5000_"] ?? ""
        XCTAssertTrue(file.contains("server = \"https://my.company.registry:5000\""), file)
        XCTAssertTrue(file.contains("[host.\"http://my.company.registry:5000\"]"), file)
    }

    // 2. A source listed before its mirrors stays first; no "contradicting orders" for one list.
    func testItem2SourceListedFirstKeepsItsPlace() {
        let k3s = loaded("""
            mirrors:
              "localhost:5000":
                endpoint: ["http://localhost:5000", "http://mirror.example:5000"]
              "reg.example:5000":
                endpoint: ["http://reg.example:5000", "http://mirror.example:5000"]
            """)
        XCTAssertEqual(mirrors(k3s, "localhost:5000"), ["http://localhost:5000", "http://mirror.example:5000"])
        XCTAssertEqual(mirrors(k3s, "reg.example:5000"), ["http://reg.example:5000", "http://mirror.example:5000"])
        XCTAssertEqual(k3s.diagnostics.warnings.map(\.message), [])
        let idms = loaded("""
            apiVersion: config.openshift.io/v1
            kind: ImageDigestMirrorSet
            spec:
              imageDigestMirrors:
              - source: quay.io/org
                mirrors: [quay.io/org, mirror.example/org]
            """)
        XCTAssertEqual(mirrors(idms, "quay.io/org"), ["https://quay.io/org", "https://mirror.example/org"])
        XCTAssertEqual(idms.diagnostics.warnings.map(\.message), [])
    }

    // 3. `configs."*"` configures the `_default` hosts file only, never every mirror; CRI-O does
    // not get `insecure = true` (which would also allow plain HTTP) from it.
    func testItem3WildcardConfigsApplyToDefaultOnly() {
        let (files, crio, _) = render("""
            mirrors:
              docker.io:
                endpoint: ["https://mirror.example"]
            configs:
              "*":
                tls:
                  insecure_skip_verify: true
            """)
        XCTAssertFalse(files["docker.io"]?.contains("skip_verify") ?? true, files["docker.io"] ?? "no docker.io")
        XCTAssertFalse(crio.contains("insecure = true"), crio)
        let defaultFile = files["_default"] ?? ""
        XCTAssertTrue(defaultFile.contains("skip_verify = true"), defaultFile)
        XCTAssertFalse(defaultFile.contains("server"), defaultFile)
        XCTAssertTrue(defaultFile.hasSuffix("skip_verify = true\n[host]\n"), defaultFile)
        // Only `configs."*"`: still the `_default` file, not silently nothing.
        let (only, _, _) = render("configs:\n  \"*\":\n    tls:\n      ca_file: /etc/ssl/corp.pem\n")
        XCTAssertEqual(Array(only.keys), ["_default"])
        XCTAssertTrue(only["_default"]?.contains("ca = \"/etc/ssl/corp.pem\"") ?? false, "\(only)")
    }

    // 4. Loopback sources are plain HTTP upstream; `localhost` with no port and DNS names that
    // start with "127." are HTTPS.
    func testItem4LoopbackAndLocalhost() {
        let (files, _, result) = render("""
            mirrors:
              "127.0.0.1:5000": {endpoint: ["mirror.example"]}
              "localhost:5000": {endpoint: ["mirror.example"]}
              "[::1]:5000": {endpoint: ["mirror.example"]}
              "127.example.com:5000": {endpoint: ["mirror.example"]}
              quay.io: {endpoint: ["localhost", "127.example.com:5000", "127.0.0.2:5000", "localhost:443"]}
            """)
        XCTAssertTrue(files["127.0.0.1_5000_"]?.contains("server = \"http://127.0.0.1:5000\"") ?? false, "\(files)")
        XCTAssertTrue(files["localhost_5000_"]?.contains("server = \"http://localhost:5000\"") ?? false, "\(files)")
        XCTAssertTrue(files["[::1]_5000_"]?.contains("server = \"http://[::1]:5000\"") ?? false, "\(files.keys.sorted())")
        XCTAssertTrue(files["127.example.com_5000_"]?.contains("server = \"https://127.example.com:5000\"") ?? false, "\(files)")
        XCTAssertEqual(
            mirrors(result, "quay.io"), ["https://localhost", "https://127.example.com:5000", "http://127.0.0.2:5000", "https://localhost:443"])
    }

    // 5. configs for registry-1.docker.io apply to docker.io (k3s looks up the host an image is
    // reached at first); an endpoint spelled docker.io is https://registry-1.docker.io.
    func testItem5DockerHubSpellings() {
        let (files, _, result) = render("""
            mirrors:
              docker.io:
                endpoint: ["docker.io", "mirror.example"]
            configs:
              registry-1.docker.io:
                tls: {ca_file: /etc/ssl/hub.pem}
            """)
        XCTAssertEqual(mirrors(result, "docker.io"), ["https://registry-1.docker.io", "https://mirror.example"])
        let file = files["docker.io"] ?? ""
        XCTAssertTrue(file.contains("server = \"https://registry-1.docker.io\"\nca = \"/etc/ssl/hub.pem\""), file)
        XCTAssertTrue(file.contains("[host.\"https://registry-1.docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"/etc/ssl/hub.pem\""), file)
        // With configs under docker.io too, k3s gives the upstream docker.io's own entry, and
        // endpoints on registry-1.docker.io still registry-1.docker.io's.
        let (both, _, _) = render("""
            mirrors:
              docker.io:
                endpoint: ["docker.io", "mirror.example"]
            configs:
              registry-1.docker.io:
                tls: {ca_file: /etc/ssl/hub.pem}
              docker.io:
                tls: {ca_file: /etc/ssl/other.pem}
            """)
        let bothFile = both["docker.io"] ?? ""
        XCTAssertTrue(bothFile.contains("server = \"https://registry-1.docker.io\"\nca = \"/etc/ssl/other.pem\""), bothFile)
        XCTAssertTrue(bothFile.contains("[host.\"https://registry-1.docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"/etc/ssl/hub.pem\""), bothFile)
    }

    // 6. Entries with no value are valid k3s: enabled, nothing to render; the rest still applies.
    func testItem6EntriesWithNoValueAreAccepted() {
        let result = loaded("""
            mirrors:
              docker.io:
              "*":
              quay.io:
                endpoint:
              ghcr.io:
                endpoint: [mirror.example]
            configs:
              registry.example.com:
            """)
        XCTAssertTrue(result.isValid, "\(result.diagnostics.errors)")
        XCTAssertEqual(result.model.registries.map(\.source.description), ["ghcr.io"])
    }

    // 7. A nested prefix in the main registries.conf would shadow our mirrors: reported, and
    // carried into the drop-in with our mirrors when that is safe.
    func testItem7NestedPrefixInMainRegistriesConf() throws {
        try write("/etc/containers/registries.conf", """
            [[registry]]
            location = "reg.example/org"
            insecure = true

            [[registry]]
            prefix = "reg.example/team"
            location = "reg.example/team"

            [[registry.mirror]]
            location = "their-mirror.example/team"
            """)
        var settings = AgentSettings()
        settings.runtimes = .explicit([.crio])
        let result = loaded("""
            apiVersion: config.openshift.io/v1
            kind: ImageDigestMirrorSet
            spec:
              imageDigestMirrors:
              - source: reg.example
                mirrors: [mirror.example/reg]
            """)
        let plan = Reconciler(root: root, settings: settings).plan(result.model)
        let messages = plan.warnings.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("prefix \"reg.example/org\"") && $0.contains("nested inside reg.example") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("prefix \"reg.example/team\"") && $0.contains("shadows its mirrors") }, "\(messages)")
        let dropIn = plan.files.first?.contents ?? ""
        XCTAssertTrue(
            dropIn.contains("prefix = \"reg.example/org\"\nlocation = \"reg.example/org\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"mirror.example/reg/org\"\ninsecure = false\npull-from-mirror = \"digest-only\"\n"),
            dropIn)
        XCTAssertFalse(dropIn.contains("reg.example/team"), dropIn)
    }

    // 7, the other way round: a scope around ours in the main registries.conf (here a wildcard
    // that blocks a whole domain) would stop applying to our source; its blocked is kept.
    func testItem7EnclosingBlockedScopeIsKept() throws {
        try write("/etc/containers/registries.conf", "[[registry]]\nprefix = \"*.corp.example\"\nblocked = true\n")
        var settings = AgentSettings()
        settings.runtimes = .explicit([.crio])
        let result = loaded("mirrors:\n  reg.corp.example:\n    endpoint: [mirror.example]\n")
        let plan = Reconciler(root: root, settings: settings).plan(result.model)
        XCTAssertTrue(
            plan.warnings.contains { $0.message.contains("reg.corp.example is inside [[registry]] prefix \"*.corp.example\"") && $0.message.hasSuffix("its blocked = true is kept there") },
            "\(plan.warnings.map(\.message))")
        let dropIn = plan.files.first?.contents ?? ""
        XCTAssertTrue(dropIn.contains("prefix = \"reg.corp.example\"\nlocation = \"reg.corp.example\"\nblocked = true\n"), dropIn)
    }

    // A table of our own prefix in the main file: the drop-in replaces it, keeping its insecure
    // (as runtime-utils keeps it on the entry it edits) and reporting the mirrors it drops.
    func testItem7SamePrefixKeepsInsecureAndReportsDroppedMirrors() throws {
        try write("/etc/containers/registries.conf", "[[registry]]\nlocation = \"quay.io\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"old.example/quay\"\n")
        var settings = AgentSettings()
        settings.runtimes = .explicit([.crio])
        let result = loaded("mirrors:\n  quay.io:\n    endpoint: [mirror.example]\n")
        let plan = Reconciler(root: root, settings: settings).plan(result.model)
        let messages = plan.warnings.map(\.message)
        XCTAssertTrue(messages.contains { $0.hasPrefix("[[registry]] prefix \"quay.io\" in ") && $0.hasSuffix("is replaced by the drop-in's table; its insecure = true is kept there") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("replaces [[registry]] prefix \"quay.io\"") && $0.hasSuffix("dropping: mirrors old.example/quay") }, "\(messages)")
        let dropIn = plan.files.first?.contents ?? ""
        XCTAssertTrue(dropIn.contains("prefix = \"quay.io\"\nlocation = \"quay.io\"\ninsecure = true\n"), dropIn)
    }

    // 9. A repository-path source that overlaps a host entry: the warning says what containerd
    // really does with images under the path.
    func testItem9RepositoryPathOverlappingAHostSaysWhatHappens() {
        let result = loaded("""
            apiVersion: config.openshift.io/v1
            kind: ImageDigestMirrorSet
            spec:
              imageDigestMirrors:
              - source: quay.io
                mirrors: [mirror.example/quay]
              - source: quay.io/org
                mirrors: [mirror.example/org]
                mirrorSourcePolicy: NeverContactSource
            """)
        let warnings = ContainerdHostsRenderer(hostsDirectory: "/etc/containerd/certs.d").render(result.model).warnings.map(\.message)
        XCTAssertTrue(
            warnings.contains {
                $0.hasPrefix("quay.io/org skipped for containerd")
                    && $0.hasSuffix("Images under it use quay.io's hosts.toml instead: quay.io's mirrors, then the source, even though it is NeverContactSource")
            }, "\(warnings)")
    }

    // 8. Credentials are no longer only warned about: issue 15 writes them (containerd's
    // config.toml, CRI-O's auth file), so no "not written" warning remains.
    func testItem8CredentialsAreKeptWithoutANotWrittenWarning() {
        let result = loaded("configs:\n  ghcr.io:\n    auth: {username: u, password: p}\n")
        XCTAssertEqual(result.diagnostics.warnings.map(\.message), [])
        XCTAssertEqual(result.model.credentials.map(\.host), ["ghcr.io"])
    }
}
