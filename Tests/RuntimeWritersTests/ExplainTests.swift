import DesiredState
import Foundation
import XCTest

@testable import RuntimeWriters

/// The corpus: configurations as people really write them (ours, k3s/Spegel style, by hand,
/// and the known traps), each with the first endpoint the runtime asks. The integration suite
/// (tests/integration/test_explain.sh) has the runtimes themselves judge a subset of these.
final class ExplainTests: ScratchRootTestCase {
    struct Case {
        var name: String
        var files: [String: String]
        var reference: String
        var runtime: String = "containerd"
        var containerdVersion: String? = "1.6.20"
        /// The first endpoint asked (containerd: URL, CRI-O: location), nil when blocked/none.
        var first: String?
        var warning: String? = nil
        var fact: String? = nil
        var blocked = false
    }

    static let v2Config = """
        version = 2
        [plugins."io.containerd.grpc.v1.cri".registry]
          config_path = "/etc/containerd/certs.d"
        """
    static let v3ListConfig = """
        version = 3
        [plugins."io.containerd.cri.v1.images".registry]
          config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
        """
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    static let cases: [Case] = [
        Case(
            name: "ours: one mirror for docker.io, upstream last",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": """
                # Managed by mirror-agent
                server = "https://registry-1.docker.io"

                [host."http://127.0.0.1:5001"]
                  capabilities = ["pull", "resolve"]
                """,
            ],
            reference: "nginx", first: "http://127.0.0.1:5001/v2"),
        Case(
            name: "no config.toml: the registry itself",
            files: [:], reference: "quay.io/app/x:1", first: "https://quay.io/v2", fact: "runs on its defaults"),
        Case(
            name: "config_path unset: hosts.toml is never read",
            files: [
                "/etc/containerd/config.toml": "version = 2\n",
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5001\"]\n",
            ],
            reference: "nginx", first: "https://registry-1.docker.io/v2", warning: "but config_path is not set", fact: "config_path is not set"),
        Case(
            name: "trap: server only, no host table, on 1.x: ignored (seen with 1.6.20)",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/docker.io/hosts.toml": "server = \"http://127.0.0.1:5002\"\n"],
            reference: "docker.io/library/busybox:1.36", first: "https://registry-1.docker.io/v2", warning: "invalid `host` tree"),
        Case(
            name: "server only, no host table, on 2.x: the server",
            files: [
                "/etc/containerd/config.toml": "version = 3\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
                "/etc/containerd/certs.d/docker.io/hosts.toml": "server = \"http://127.0.0.1:5002\"\n",
            ],
            reference: "docker.io/library/busybox:1.36", containerdVersion: "2.1.3", first: "http://127.0.0.1:5002/v2"),
        Case(
            name: "k3s style: _default mirror applies to any registry",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/_default/hosts.toml": "[host.\"http://127.0.0.1:5003\"]\n  capabilities = [\"pull\", \"resolve\"]\n"],
            reference: "ghcr.io/org/tool:2", first: "http://127.0.0.1:5003/v2", fact: "_default"),
        Case(
            name: "trap: certs.d/<host>/ with only a CA hides _default",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/_default/hosts.toml": "[host.\"http://127.0.0.1:5003\"]\n",
                "/etc/containerd/certs.d/ghcr.io/ca.crt": "x",
            ],
            reference: "ghcr.io/org/tool:2", first: "https://ghcr.io/v2", warning: "has no hosts.toml"),
        Case(
            name: "host_port_ is looked up before host:port",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/reg.local:5000/hosts.toml": "[host.\"http://127.0.0.1:5004\"]\n",
                "/etc/containerd/certs.d/reg.local_5000_/hosts.toml": "[host.\"http://127.0.0.1:5005\"]\n",
            ],
            reference: "reg.local:5000/team/app:v1", first: "http://127.0.0.1:5005/v2"),
        Case(
            name: "host:port spelling alone",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/reg.local:5000/hosts.toml": "[host.\"http://127.0.0.1:5004\"]\n"],
            reference: "reg.local:5000/team/app:v1", first: "http://127.0.0.1:5004/v2"),
        Case(
            name: "host without port does not cover host:port in containerd",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/reg.local/hosts.toml": "[host.\"http://127.0.0.1:5004\"]\n"],
            reference: "reg.local:5000/team/app:v1", first: "https://reg.local:5000/v2"),
        Case(
            name: "digest pull: a pull-only mirror is asked first",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5006\"]\n  capabilities = [\"pull\"]\n[host.\"http://127.0.0.1:5007\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ],
            reference: "nginx@" + digest, first: "http://127.0.0.1:5006/v2"),
        Case(
            name: "tag pull: the pull-only mirror is skipped",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5006\"]\n  capabilities = [\"pull\"]\n[host.\"http://127.0.0.1:5007\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ],
            reference: "nginx:1.27", first: "http://127.0.0.1:5007/v2"),
        Case(
            name: "host order is file order, not alphabetical",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"https://zz.example\"]\n[host.\"https://aa.example\"]\n",
            ],
            reference: "nginx", first: "https://zz.example/v2"),
        Case(
            name: "override_path keeps the path as written",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"https://cache.example/proxy/docker\"]\n  override_path = true\n",
            ],
            reference: "nginx", first: "https://cache.example/proxy/docker"),
        Case(
            name: "a path without override_path gets /v2",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"https://cache.example/proxy/docker\"]\n"],
            reference: "nginx", first: "https://cache.example/proxy/docker/v2"),
        Case(
            name: "trap: ':'-separated config_path on 2.x, first root wins with _default",
            files: [
                "/etc/containerd/config.toml": v3ListConfig,
                "/etc/containerd/certs.d/_default/hosts.toml": "[host.\"http://127.0.0.1:5008\"]\n",
                "/etc/docker/certs.d/quay.io/hosts.toml": "[host.\"http://127.0.0.1:5009\"]\n",
            ],
            // CRI pulls go through the transfer service on 2.1+, which reads the list as one
            // directory: the registry itself (judged by containerd 2.1.9 in case_explain.sh).
            reference: "quay.io/a/b:1", containerdVersion: "2.1.3", first: "https://quay.io/v2", warning: "transfer service"),
        Case(
            name: "':'-separated config_path on 2.1+: a later root's host directory is not used either",
            files: ["/etc/containerd/config.toml": v3ListConfig, "/etc/docker/certs.d/quay.io/hosts.toml": "[host.\"http://127.0.0.1:5009\"]\n"],
            reference: "quay.io/a/b:1", containerdVersion: "2.1.3", first: "https://quay.io/v2"),
        Case(
            name: "':'-separated config_path with use_local_image_pull: the CRI plugin reads the list, first root wins with _default",
            files: [
                "/etc/containerd/config.toml": "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  use_local_image_pull = true\n[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
                "/etc/containerd/certs.d/_default/hosts.toml": "[host.\"http://127.0.0.1:5008\"]\n",
                "/etc/docker/certs.d/quay.io/hosts.toml": "[host.\"http://127.0.0.1:5009\"]\n",
            ],
            reference: "quay.io/a/b:1", containerdVersion: "2.1.3", first: "http://127.0.0.1:5008/v2"),
        Case(
            name: "':'-separated config_path on 1.7: the CRI plugin reads the list, second root when the first has nothing",
            files: [
                "/etc/containerd/config.toml": "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n",
                "/etc/docker/certs.d/quay.io/hosts.toml": "[host.\"http://127.0.0.1:5009\"]\n",
            ],
            reference: "quay.io/a/b:1", containerdVersion: "1.7.24", first: "http://127.0.0.1:5009/v2"),
        Case(
            name: "trap: legacy registry.mirrors without config_path",
            files: [
                "/etc/containerd/config.toml": """
                version = 2
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
                  endpoint = ["http://127.0.0.1:5010"]
                """
            ],
            reference: "nginx", first: "http://127.0.0.1:5010/v2", warning: "deprecated registry.mirrors"),
        Case(
            name: "legacy registry.mirrors: an endpoint without a scheme on a loopback host is http, a path is kept as written",
            files: [
                "/etc/containerd/config.toml": """
                version = 2
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."quay.io"]
                  endpoint = ["127.0.0.1:5014/cache", "mirror.example"]
                """
            ],
            reference: "quay.io/a/b:1", first: "http://127.0.0.1:5014/cache", warning: "deprecated registry.mirrors"),
        Case(
            name: "legacy registry.mirrors: \"*\" applies to a registry without its own entry; https for a DNS name",
            files: [
                "/etc/containerd/config.toml": """
                version = 2
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
                  endpoint = ["http://127.0.0.1:5015"]
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."*"]
                  endpoint = ["mirror.example"]
                """
            ],
            reference: "quay.io/a/b:1", first: "https://mirror.example/v2", warning: "deprecated registry.mirrors"),
        Case(
            name: "legacy registry.mirrors on 2.x: under the CRI images plugin of a version-3 file",
            files: [
                "/etc/containerd/config.toml": """
                version = 3
                [plugins."io.containerd.cri.v1.images".registry.mirrors."docker.io"]
                  endpoint = ["http://127.0.0.1:5016"]
                """
            ],
            reference: "nginx", containerdVersion: "2.1.9", first: "http://127.0.0.1:5016/v2", warning: "deprecated registry.mirrors"),
        Case(
            name: "trap: legacy registry.mirrors beside config_path",
            files: [
                "/etc/containerd/config.toml": """
                version = 2
                [plugins."io.containerd.grpc.v1.cri".registry]
                  config_path = "/etc/containerd/certs.d"
                [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
                  endpoint = ["http://127.0.0.1:5010"]
                """,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5011\"]\n",
            ],
            reference: "nginx", first: nil, warning: "the CRI plugin does not load"),
        Case(
            name: "trap: legacy registry.configs.<host>.tls beside config_path on 1.x: the CRI plugin does not load",
            files: [
                "/etc/containerd/config.toml": """
                version = 2
                [plugins."io.containerd.grpc.v1.cri".registry]
                  config_path = "/etc/containerd/certs.d"
                [plugins."io.containerd.grpc.v1.cri".registry.configs."docker.io".tls]
                  insecure_skip_verify = true
                """,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5011\"]\n",
            ],
            reference: "nginx", containerdVersion: "1.7.24", first: nil, warning: "`configs.tls` cannot be set"),
        Case(
            name: "legacy registry.configs.<host>.tls beside config_path on 2.1: loads, hosts.toml applies",
            files: [
                "/etc/containerd/config.toml": """
                version = 3
                [plugins."io.containerd.cri.v1.images".registry]
                  config_path = "/etc/containerd/certs.d"
                [plugins."io.containerd.cri.v1.images".registry.configs."docker.io".tls]
                  insecure_skip_verify = true
                """,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5011\"]\n",
            ],
            reference: "nginx", containerdVersion: "2.1.9", first: "http://127.0.0.1:5011/v2"),
        Case(
            name: "trap: a CA file that does not exist",
            files: [
                "/etc/containerd/config.toml": v2Config,
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"https://m.example\"]\n  ca = \"/etc/containerd/certs.d/docker.io/missing.crt\"\n",
            ],
            reference: "nginx", first: "https://m.example/v2", warning: "does not exist"),
        Case(
            name: "invalid hosts.toml: containerd falls back to the registry itself",
            files: ["/etc/containerd/config.toml": v2Config, "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5012\"\n"],
            reference: "nginx", first: "https://registry-1.docker.io/v2", warning: "not valid TOML"),
        Case(
            name: "1.x: an import touching the CRI plugin replaces config_path",
            files: [
                "/etc/containerd/config.toml": "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n" + v2Config.dropFirst("version = 2\n".count),
                "/etc/containerd/conf.d/10-x.toml": "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause\"\n",
                "/etc/containerd/certs.d/docker.io/hosts.toml": "[host.\"http://127.0.0.1:5013\"]\n",
            ],
            reference: "nginx", first: "https://registry-1.docker.io/v2", fact: "config_path is not set"),
        // CRI-O / containers/image
        Case(
            name: "crio: ours, a drop-in with a mirror",
            files: [
                "/etc/containers/registries.conf": "unqualified-search-registries = [\"docker.io\"]\n",
                "/etc/containers/registries.conf.d/50-mirror-agent.conf": "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5020\"\ninsecure = true\n",
            ],
            reference: "docker.io/library/nginx:1.27", runtime: "crio", first: "127.0.0.1:5020/library/nginx"),
        Case(
            name: "crio: longest prefix wins across drop-ins",
            files: [
                "/etc/containers/registries.conf.d/10-a.conf": "[[registry]]\nprefix = \"quay.io/team/app\"\nlocation = \"quay.io/team/app\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5021/app\"\n",
                "/etc/containers/registries.conf.d/20-b.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5022\"\n",
            ],
            reference: "quay.io/team/app:3", runtime: "crio", first: "127.0.0.1:5021/app"),
        Case(
            name: "crio: repository-path prefix does not match a sibling",
            files: [
                "/etc/containers/registries.conf.d/10-a.conf": "[[registry]]\nprefix = \"quay.io/team/app\"\nlocation = \"quay.io/team/app\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5021/app\"\n"
            ],
            reference: "quay.io/team/application:3", runtime: "crio", first: "quay.io/team/application"),
        Case(
            name: "crio: a later drop-in replaces the same prefix whole",
            files: [
                "/etc/containers/registries.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5023\"\n",
                "/etc/containers/registries.conf.d/99-z.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n",
            ],
            reference: "quay.io/a/b:1", runtime: "crio", first: "quay.io/a/b", warning: "replaces the one in"),
        Case(
            name: "crio: example.com also matches example.com:5000",
            files: ["/etc/containers/registries.conf": "[[registry]]\nprefix = \"reg.local\"\nlocation = \"reg.local\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5024\"\n"],
            reference: "reg.local:5000/x/y:1", runtime: "crio", first: "127.0.0.1:5024:5000/x/y", warning: "with any port"),
        Case(
            name: "crio: digest-only mirror skipped for a tag",
            files: [
                "/etc/containers/registries.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5025\"\npull-from-mirror = \"digest-only\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5026\"\n"
            ],
            reference: "quay.io/a/b:1", runtime: "crio", first: "127.0.0.1:5026/a/b"),
        Case(
            name: "crio: digest-only mirror used for a digest",
            files: [
                "/etc/containers/registries.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5025\"\npull-from-mirror = \"digest-only\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5026\"\n"
            ],
            reference: "quay.io/a/b@" + digest, runtime: "crio", first: "127.0.0.1:5025/a/b"),
        Case(
            name: "crio: tag-only mirror skipped for a digest, deprecated mirror-by-digest-only warned",
            files: [
                "/etc/containers/registries.conf": "[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5027\"\npull-from-mirror = \"tag-only\"\n[[registry]]\nprefix = \"ghcr.io\"\nlocation = \"ghcr.io\"\nmirror-by-digest-only = true\n"
            ],
            reference: "quay.io/a/b@" + digest, runtime: "crio", first: "quay.io/a/b", warning: "deprecated"),
        Case(
            name: "crio: blocked",
            files: ["/etc/containers/registries.conf": "[[registry]]\nprefix = \"evil.example\"\nlocation = \"evil.example\"\nblocked = true\n"],
            reference: "evil.example/x:1", runtime: "crio", first: nil, blocked: true),
        Case(
            name: "crio: unqualified name through unqualified-search-registries",
            files: [
                "/etc/containers/registries.conf": "unqualified-search-registries = [\"quay.io\", \"docker.io\"]\n[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5028\"\n"
            ],
            reference: "busybox", runtime: "crio", first: "127.0.0.1:5028/busybox", fact: "tries quay.io/busybox, docker.io/library/busybox"),
        Case(
            name: "crio: unqualified name through a short-name alias",
            files: [
                "/etc/containers/registries.conf": "unqualified-search-registries = [\"quay.io\"]\n",
                "/etc/containers/registries.conf.d/000-shortnames.conf": "[aliases]\n  \"busybox\" = \"docker.io/library/busybox\"\n",
            ],
            reference: "busybox:1.36", runtime: "crio", first: "docker.io/library/busybox", fact: "alias"),
        Case(
            name: "crio: location rewrites the repository path",
            files: ["/etc/containers/registries.conf": "[[registry]]\nprefix = \"registry.k8s.io\"\nlocation = \"127.0.0.1:5029/k8s\"\n"],
            reference: "registry.k8s.io/pause:3.9", runtime: "crio", first: "127.0.0.1:5029/k8s/pause"),
        Case(
            name: "crio: wildcard prefix",
            files: ["/etc/containers/registries.conf": "[[registry]]\nprefix = \"*.corp.example\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5030\"\n"],
            reference: "a.corp.example/x/y:1", runtime: "crio", first: "127.0.0.1:5030/x/y"),
    ]

    func testCorpus() throws {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 20)
        for c in Self.cases {
            try? FileManager.default.removeItem(atPath: scratch)
            for (path, text) in c.files { try write(path, text) }
            let reference = try ImageReference.parse(c.reference).get()
            let explanation =
                c.runtime == "crio"
                ? CRIOExplainer(root: root).explain(reference)
                : ContainerdExplainer(root: root, containerdVersion: c.containerdVersion).explain(reference)
            let report = explanation.render()
            XCTAssertEqual(explanation.firstEndpoint?.url, c.first, "\(c.name)\n\(report)")
            XCTAssertEqual(explanation.blocked, c.blocked, c.name)
            if let warning = c.warning {
                XCTAssertTrue(explanation.warnings.contains { $0.text.contains(warning) }, "\(c.name): no warning containing \"\(warning)\"\n\(report)")
            }
            if let fact = c.fact {
                XCTAssertTrue(explanation.facts.contains { $0.text.contains(fact) }, "\(c.name): no fact containing \"\(fact)\"\n\(report)")
            }
        }
    }

    func testFactsNameFileAndLine() throws {
        try write("/etc/containerd/config.toml", Self.v2Config)
        try write("/etc/containerd/certs.d/docker.io/hosts.toml", "server = \"https://registry-1.docker.io\"\n\n[host.\"http://a\"]\n[host.\"http://b\"]\n")
        let e = ContainerdExplainer(root: root, containerdVersion: "1.6.20").explain(try ImageReference.parse("nginx").get())
        XCTAssertEqual(e.endpoints.map(\.url), ["http://a/v2", "http://b/v2", "https://registry-1.docker.io/v2"])
        XCTAssertEqual(e.endpoints.map(\.line), [3, 4, 1])
        XCTAssertEqual(e.endpoints[0].file, root.path("/etc/containerd/certs.d/docker.io/hosts.toml"))
        let configPath = try XCTUnwrap(e.facts.first { $0.text.hasPrefix("config_path =") })
        XCTAssertEqual(configPath.file, root.path("/etc/containerd/config.toml"))
        XCTAssertEqual(configPath.line, 3)
    }

    func testCRIOMirrorLines() throws {
        try write("/etc/containers/registries.conf", "# x\n[[registry]]\nprefix = \"a.io\"\n[[registry.mirror]]\nlocation = \"m1\"\n[[registry.mirror]]\nlocation = \"m2\"\n[[registry]]\nprefix = \"b.io\"\n[[registry.mirror]]\nlocation = \"m3\"\n")
        let e = CRIOExplainer(root: root).explain(try ImageReference.parse("b.io/x:1").get())
        XCTAssertEqual(e.endpoints.map(\.url), ["m3/x", "b.io/x"])
        XCTAssertEqual(e.endpoints.map(\.line), [10, 8])
        let a = CRIOExplainer(root: root).explain(try ImageReference.parse("a.io/x:1").get())
        XCTAssertEqual(a.endpoints.map(\.line), [4, 6, 2])
    }

    func testReferences() throws {
        let cases: [(String, String?)] = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("library/nginx:1.27", "docker.io/library/nginx:1.27"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("index.docker.io/org/app:1", "docker.io/org/app:1"),
            ("localhost/app", "localhost/app:latest"),
            ("reg.local:5000/a/b/c:v1", "reg.local:5000/a/b/c:v1"),
            ("127.0.0.1:5000/app@" + Self.digest, "127.0.0.1:5000/app@" + Self.digest),
            ("app:1@" + Self.digest, "docker.io/library/app:1@" + Self.digest),
            ("Nginx", nil), ("nginx:", nil), ("nginx@sha256:abc", nil), ("", nil), ("a b", nil), ("reg.local:5000//x", nil),
        ]
        for (text, expected) in cases {
            switch ImageReference.parse(text) {
            case .success(let r): XCTAssertEqual(r.normalized, expected, text)
            case .failure(let e): XCTAssertNil(expected, "\(text): \(e)")
            }
        }
    }
}

extension ExplainTests {
    func testDemotedMirrorFromStatus() throws {
        try write("/etc/containerd/config.toml", Self.v2Config)
        try write("/etc/containerd/certs.d/docker.io/hosts.toml", "[host.\"http://127.0.0.1:5001\"]\n")
        var e = ContainerdExplainer(root: root, containerdVersion: "1.6.20").explain(try ImageReference.parse("nginx").get())
        e.addHealth(
            [
                .init(url: "http://127.0.0.1:5009", registries: ["docker.io"], state: "demoted"),
                .init(url: "http://127.0.0.1:5001", registries: ["docker.io"], state: "down"),
                .init(url: "http://127.0.0.1:5008", registries: ["quay.io"], state: "demoted"),
                .init(url: "http://127.0.0.1:5007", registries: ["docker.io"], state: "up"),
            ], statusFile: "/run/mirror-agent/status.json")
        XCTAssertEqual(e.warnings.count, 2, e.render())
        XCTAssertTrue(e.warnings[0].text.contains("5009 is demoted"))
        XCTAssertTrue(e.warnings[1].text.contains("still asks it first"))
    }
}
