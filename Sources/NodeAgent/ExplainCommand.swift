import AgentCore
import ArgumentParser
import DesiredState
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HealthProbe
import RuntimeWriters

/// `mirror-agent explain REF`: where each runtime would really pull an image from, and why,
/// from the files the runtime reads (whoever wrote them).
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain where containerd and CRI-O would pull an image from, and why.",
        discussion: """
            REF is written as a pod spec writes it: nginx, docker.io/library/nginx:1.27, host:port/path/app, \
            name@sha256:<64 hex>. Reads containerd's config.toml and imports (or `containerd config dump` when \
            --root is / and containerd is installed), the hosts directories of config_path, and registries.conf \
            with registries.conf.d in reading order. Each fact names its file and line. Exit 0 with an \
            explanation, 2 when REF is not a valid reference.
            """
    )

    enum Runtime: String, ExpressibleByArgument, CaseIterable {
        case containerd, crio
    }

    @Argument(help: "The image reference, as a pod spec writes it.")
    var reference: String
    @Option(name: .long, help: "containerd or crio (default: each one configured under the root).")
    var runtime: Runtime?
    @Option(name: .long, help: "containerd's main config file (a host path).")
    var containerdConfig = "/etc/containerd/config.toml"
    @Flag(name: .long, help: "Ask each endpoint in order for the manifest, as the runtime would (credentials from the desired state's k3s configs.<host>.auth, Basic or a Bearer token), and time it.")
    var probe = false
    @Flag(name: .long, help: "Print JSON (a list, one explanation per runtime).")
    var json = false
    @OptionGroup var common: CommonOptions

    func run() throws {
        let parsed: ImageReference
        switch ImageReference.parse(reference) {
        case .success(let value): parsed = value
        case .failure(let error):
            FileHandleOutput.standardError("\(reference): not a valid image reference: \(error)")
            throw ExitCode(ExitStatus.invalidInput)
        }
        let root = common.hostRoot
        var runtimes: [Runtime] = runtime.map { [$0] } ?? []
        if runtimes.isEmpty {
            if FileSystem.exists(root.path("/etc/containerd")) || FileSystem.exists(root.path("/usr/bin/containerd")) { runtimes.append(.containerd) }
            if FileSystem.exists(root.path("/etc/containers/registries.conf")) || FileSystem.exists(root.path("/etc/containers/registries.conf.d")) || FileSystem.exists(root.path("/etc/crio")) {
                runtimes.append(.crio)
            }
            if runtimes.isEmpty { runtimes = [.containerd] }
        }
        var explanations: [Explanation] = []
        for runtime in runtimes {
            switch runtime {
            case .containerd:
                let version = RuntimeDetection.containerdVersion(root: root)
                // On the live host, containerd's own view of its merged configuration.
                var dump: String?
                if root == .system, version != nil, FileSystem.exists(containerdConfig) { dump = Self.configDump(containerdConfig) }
                explanations.append(ContainerdExplainer(root: root, configFile: containerdConfig, containerdVersion: version, configDump: dump).explain(parsed))
            case .crio:
                explanations.append(CRIOExplainer(root: root).explain(parsed))
            }
        }
        // What the daemon knows about mirror health (demoted or down mirrors), when it runs.
        let (settings, _) = AgentSettings.load(root: root)
        let statusPath = root.path(settings.status.file)
        if case .success(let bytes) = FileSystem.read(statusPath, limit: 16 << 20),
            let status = try? JSONDecoder().decode(StatusProbes.self, from: Data(bytes))
        {
            for i in explanations.indices { explanations[i].addHealth(status.probes ?? [], statusFile: statusPath) }
        }
        if probe {
            let agentProbe = settings.probe
            let unprobed = explanations
            // Credentials as the agent's desired state holds them (k3s `configs.<host>.auth`),
            // keyed by host; never printed.
            var found: [String: ProbeCredentials] = [:]
            for entry in DesiredStateLoader.load(root: root, settings: settings).model.credentials {
                if let c = ProbeCredentials(entry) { found[entry.host] = c }
            }
            if let hub = found["registry-1.docker.io"], found["docker.io"] == nil { found["docker.io"] = hub }
            if let hub = found["docker.io"], found["registry-1.docker.io"] == nil { found["registry-1.docker.io"] = hub }
            let credentials = found
            explanations = runBlocking { () async -> [Explanation] in
                let prober = MirrorProber(settings: probeSettings(agentProbe), root: root)
                var done: [Explanation] = []
                for var explanation in unprobed {
                    var steps: [Explanation.ProbeStep] = []
                    requests: for request in explanation.manifestRequests() {
                        var tls = Self.tlsSettings(request.endpoint.tls)
                        // containers/image's insecure skips verification, as skip_verify does.
                        if request.endpoint.insecure { tls.skipVerify = true }
                        for url in request.urls {
                            let host = URLComponents(string: url).flatMap { u in u.host.map { h in u.port.map { "\(h):\($0)" } ?? h } } ?? request.endpoint.host
                            let answer = await prober.manifest(
                                url: url, method: request.method, accept: request.accept, tls: tls, credentials: credentials[host] ?? credentials[request.endpoint.host])
                            let serves = answer.status == 200
                            steps.append(.init(url: url, status: answer.status, error: answer.error, seconds: answer.seconds, serves: serves, auth: answer.auth))
                            if serves { break requests }
                            if answer.status != nil { break }  // an answer: no http fallback
                        }
                    }
                    explanation.probe = steps
                    done.append(explanation)
                }
                await prober.shutdown()
                return done
            }
        }
        if json {
            printJSON(explanations)
        } else {
            print(explanations.map { $0.render() }.joined(separator: "\n"), terminator: "")
        }
    }

    /// The TLS files explain listed for an endpoint (`ca=`, `client=` cert then key, `skip_verify`).
    static func tlsSettings(_ facts: [String]) -> TLSSettings {
        var settings = TLSSettings()
        var clients: [String] = []
        for fact in facts {
            if fact.hasPrefix("ca=") { settings.caFiles.append(String(fact.dropFirst(3))) }
            if fact.hasPrefix("client=") { clients.append(String(fact.dropFirst(7))) }
            if fact == "skip_verify" { settings.skipVerify = true }
        }
        settings.clientCertificate = clients.first
        settings.clientKey = clients.dropFirst().first
        return settings
    }

    /// The part of the daemon's status file explain reads.
    struct StatusProbes: Decodable {
        var probes: [Explanation.EndpointHealthState]?
    }

    /// `containerd --config FILE config dump`, within 30 seconds; nil when it fails or takes
    /// longer (then the files are read instead).
    static func configDump(_ file: String) -> String? {
        guard let dump = RuntimeDetection.containerdConfigDump(file: file), dump.succeeded else { return nil }
        return dump.output
    }
}
