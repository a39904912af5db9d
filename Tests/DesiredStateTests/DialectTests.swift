import DesiredState
import Diagnostics
import XCTest

/// Each dialect, from the real-world examples, asserted field by field in the normalized model.
final class DialectTests: XCTestCase {
    func testK3sRegistries() throws {
        let file = example("k3s-registries.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(result.model.registries.map(\.source.description), ["docker.io", "mirror-a.corp.example:5000", "quay.io", "registry.corp.example:5000"])

        let pki = TLSSettings(
            caFiles: ["/etc/mirror-agent/pki/corp-root.pem"], clientCertificate: "/etc/mirror-agent/pki/node.pem",
            clientKey: "/etc/mirror-agent/pki/node-key.pem")
        let docker = try result.registry("docker.io")
        XCTAssertEqual(docker.source, .host("docker.io"))
        XCTAssertEqual(docker.sourcePolicy, .allowContactingSource)
        XCTAssertEqual(docker.origins, [loc(file, 3, 3)])
        XCTAssertEqual(
            docker.mirrors,
            [
                MirrorEndpoint(scheme: .https, host: "mirror-a.corp.example:5000", tls: pki, origins: [loc(file, 5, 9)]),
                MirrorEndpoint(scheme: .http, host: "10.20.0.15:6000", origins: [loc(file, 6, 9)]),
            ])

        // The only endpoint is the registry's own default one: the upstream, not a mirror.
        let corp = try result.registry("registry.corp.example:5000")
        XCTAssertEqual(corp.mirrors, [])
        XCTAssertEqual(corp.sourceTLS, TLSSettings(skipVerify: true))

        // "/v2/quay" as an API root is the repository namespace "quay".
        let quay = try result.registry("quay.io")
        XCTAssertEqual(quay.mirrors.map(\.host), ["mirror-a.corp.example:5000"])
        XCTAssertEqual(quay.mirrors[0].path, "/quay")
        XCTAssertFalse(quay.mirrors[0].overridePath)
        XCTAssertEqual(quay.mirrors[0].apiRoot, "/v2/quay")
        XCTAssertEqual(quay.mirrors[0].tls, pki)
        XCTAssertEqual(quay.rewrites, [RewriteRule(pattern: "^coreos/(.*)", replacement: "mirrored/coreos/$1", location: loc(file, 14, 7))])

        // A configs-only host gets its TLS settings for direct pulls.
        let mirrorHost = try result.registry("mirror-a.corp.example:5000")
        XCTAssertEqual(mirrorHost.sourceTLS, pki)
        XCTAssertEqual(mirrorHost.mirrors, [])

        // Credentials are kept (and written for containerd), redacted, never echoed.
        XCTAssertEqual(result.model.credentials.count, 1)
        let credentials = result.model.credentials[0]
        XCTAssertEqual(credentials.host, "registry.corp.example:5000")
        XCTAssertEqual(credentials.username, "puller")
        XCTAssertEqual(credentials.password?.value, "not-a-real-secret")
        XCTAssertEqual("\(credentials.password!)", "<redacted>")
        XCTAssertFalse(result.diagnostics.items.map(\.description).joined().contains("not-a-real-secret"))
        XCTAssertFalse(result.diagnostics.warnings.contains { $0.message.contains("credentials") })
    }

    func testK3dPullThroughCaches() throws {
        let file = example("vkdr-mirror-registry.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(result.model.registries.map(\.source.description), ["docker.io", "ghcr.io", "registry.k8s.io"])
        for (source, port, line) in [("docker.io", 6000, 4), ("ghcr.io", 6001, 7), ("registry.k8s.io", 6002, 10)] {
            let registry = try result.registry(source)
            XCTAssertEqual(registry.mirrors, [MirrorEndpoint(scheme: .http, host: "host.k3d.internal:\(port)", origins: [loc(file, line + 1, 9)])])
        }
    }

    func testImageDigestAndTagMirrorSets() throws {
        let file = example("openshift-idms-itms.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(
            result.model.registries.map(\.source.description),
            ["quay.io/openshift-release-dev", "quay.io/openshift-release-dev/ocp-release", "registry.access.redhat.com/ubi9", "registry.redhat.io"])

        let redhat = try result.registry("registry.redhat.io")
        XCTAssertEqual(redhat.source, .host("registry.redhat.io"))
        XCTAssertEqual(redhat.sourcePolicy, .allowContactingSource)
        XCTAssertEqual(
            redhat.mirrors,
            [MirrorEndpoint(scheme: .https, host: "mirror.corp.example", path: "/redhat", capabilities: [.pull], pullFrom: .digestOnly, origins: [loc(file, 10, 7)])])

        let release = try result.registry("quay.io/openshift-release-dev/ocp-release")
        XCTAssertEqual(release.source, .repository(host: "quay.io", path: "openshift-release-dev/ocp-release"))
        XCTAssertEqual(release.sourcePolicy, .neverContactSource)
        XCTAssertEqual(release.mirrors.map(\.displayURL), ["https://mirror.corp.example/ocp/release", "https://backup-mirror.corp.example/ocp/release"])
        XCTAssertEqual(release.mirrors.map(\.pullFrom), [.digestOnly, .digestOnly])

        let tags = try result.registry("quay.io/openshift-release-dev")
        XCTAssertEqual(tags.mirrors.map(\.pullFrom), [.tagOnly])
        XCTAssertEqual(tags.mirrors.map(\.capabilities), [[.pull, .resolve]])
        XCTAssertEqual(tags.sourcePolicy, .allowContactingSource)

        let ubi = try result.registry("registry.access.redhat.com/ubi9")
        XCTAssertEqual(ubi.sourcePolicy, .neverContactSource)
        XCTAssertEqual(ubi.mirrors.map(\.displayURL), ["https://mirror.corp.example/ubi9"])
        XCTAssertEqual(ubi.origins, [loc(file, 27, 13)])
    }

    func testImageContentSourcePolicy() throws {
        let file = example("icsp.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        let registry = try result.registry("quay.io/openshift-release-dev/ocp-v4.0-art-dev")
        XCTAssertEqual(registry.sourcePolicy, .allowContactingSource)
        XCTAssertEqual(
            registry.mirrors,
            [MirrorEndpoint(scheme: .https, host: "mirror.corp.example", path: "/ocp/art-dev", capabilities: [.pull], pullFrom: .digestOnly, origins: [loc(file, 10, 7)])])
    }

    func testConfigMapWrappedSetsPointIntoTheOuterFile() throws {
        let file = example("configmap-wrapped.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        let redhat = try result.registry("registry.redhat.io")
        XCTAssertEqual(redhat.mirrors.map(\.displayURL), ["https://mirror.corp.example/redhat"])
        XCTAssertEqual(redhat.mirrors[0].pullFrom, .digestOnly)
        // Line 15, column 9 of the ConfigMap is where "- source: registry.redhat.io" sits.
        XCTAssertEqual(redhat.origins, [loc(file, 15, 17)])
        XCTAssertEqual(redhat.mirrors[0].origins, [loc(file, 17, 11)])
        let rhel = try result.registry("registry.redhat.io/rhel9")
        XCTAssertEqual(rhel.sourcePolicy, .neverContactSource)
        XCTAssertEqual(rhel.mirrors.map(\.pullFrom), [.tagOnly])
        XCTAssertEqual(rhel.origins, [loc(file, 25, 17)])
    }

    func testConfigMapEmbeddedErrorIsReportedAtTheOuterLine() throws {
        let text = """
            apiVersion: v1
            kind: ConfigMap
            data:
              idms.yaml: |
                apiVersion: config.openshift.io/v1
                kind: ImageDigestMirrorSet
                spec:
                  imageDigestMirrors:
                  - source: registry.redhat.io
                    mirorrs: [a.example]

            """
        let result = load(text: text, file: "cm.yaml")
        XCTAssertEqual(result.errorTexts, ["cm.yaml:10:9: unknown field \"mirorrs\" in spec.imageDigestMirrors[0]; did you mean \"mirrors\"?"])
    }

    func testMirrorSet() throws {
        let file = example("mirrorset.yaml")
        let result = load([file])
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(result.model.registries.map(\.source.description), ["*", "docker.io", "gcr.io", "quay.io/openshift-release-dev"])

        let docker = try result.registry("docker.io")
        XCTAssertEqual(
            docker.mirrors,
            [
                MirrorEndpoint(
                    scheme: .https, host: "mirror-a.corp.example:5000", capabilities: [.pull, .resolve],
                    tls: TLSSettings(
                        caFiles: ["/etc/mirror-agent/pki/corp-root.pem"], clientCertificate: "/etc/mirror-agent/pki/node.pem",
                        clientKey: "/etc/mirror-agent/pki/node-key.pem"),
                    headers: [HTTPHeader(name: "X-Mirror-Client", values: ["node-agent"])], origins: [loc(file, 12, 11)]),
                MirrorEndpoint(scheme: .https, host: "mirror-b.corp.example", path: "/dockerhub", origins: [loc(file, 21, 11)]),
            ])
        let ghcr = try result.registry("gcr.io")
        XCTAssertEqual(ghcr.sourcePolicy, .neverContactSource)
        XCTAssertEqual(ghcr.mirrors.map(\.displayURL), ["https://mirror-a.corp.example:5000/gcr"])
        let quay = try result.registry("quay.io/openshift-release-dev")
        XCTAssertEqual(quay.mirrors.map(\.pullFrom), [.digestOnly])
        XCTAssertEqual(quay.mirrors.map(\.capabilities), [[.pull]])
        let every = try result.registry("*")
        XCTAssertEqual(every.source, .everyRegistry)
        XCTAssertEqual(every.mirrors.map(\.displayURL), ["http://pull-through.corp.example:6000"])
    }

    func testMirrorSetOverridePathIsTheLiteralAPIRoot() throws {
        let result = load(text: """
            apiVersion: mirror-agent/v1
            kind: MirrorSet
            spec:
              registries:
              - source: docker.io
                mirrors:
                - url: https://artifactory.corp.example/artifactory/api/docker/hub/v2
                  overridePath: true
            """)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        let mirror = try result.registry("docker.io").mirrors[0]
        XCTAssertTrue(mirror.overridePath)
        XCTAssertEqual(mirror.apiRoot, "/artifactory/api/docker/hub/v2")
    }

    func testInsecureRegistriesMakeSchemelessMirrorsHTTP() throws {
        var settings = AgentSettings()
        settings.insecureRegistries = ["mirror.corp.example"]
        let result = load([example("icsp.yaml")], settings: settings)
        XCTAssertEqual(try result.registry("quay.io/openshift-release-dev/ocp-v4.0-art-dev").mirrors[0].scheme, .http)
    }

    func testKubectlListOfSets() throws {
        let result = load(text: """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: config.openshift.io/v1
              kind: ImageDigestMirrorSet
              metadata: {name: a, uid: 1234, resourceVersion: "9"}
              spec:
                imageDigestMirrors:
                - source: registry.redhat.io
                  mirrors: [mirror.corp.example/redhat]
              status: {}
            """)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(try result.registry("registry.redhat.io").mirrors.map(\.displayURL), ["https://mirror.corp.example/redhat"])
    }

    func testK3sEndpointNormalization() throws {
        let result = load(text: """
            mirrors:
              docker.io:
                endpoint:
                - localhost:5000
                - localhost:443
                - mirror.example/
                - https://proxy.example/v2
                - https://registry-1.docker.io
              "*":
                endpoint: ["https://any.example"]
            """)
        XCTAssertTrue(result.isValid, "\(result.errorTexts)")
        XCTAssertEqual(
            try result.registry("docker.io").mirrors.map(\.displayURL),
            ["http://localhost:5000", "https://localhost:443", "https://mirror.example", "https://proxy.example"])
        XCTAssertEqual(try result.registry("*").mirrors.map(\.displayURL), ["https://any.example"])
    }
}
