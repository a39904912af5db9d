import Diagnostics
import MarkedYAML

/// k3s / k3d / rke2 `registries.yaml`: `mirrors.<host>.endpoint[]`, `rewrite`, and
/// `configs.<host>.tls` / `.auth`.
///
/// Endpoints are normalized the way k3s does it: no scheme means HTTPS (plain HTTP for localhost
/// on a port other than 443); a path of "", "/" or "/v2" is the standard API root and any other
/// path is the literal API root (`override_path`); an endpoint equal to the registry's own
/// default endpoint, when last, is the upstream itself and not a mirror.
enum K3sRegistriesDialect {
    static func decode(_ fields: FieldReader, context: DecodingContext, into result: inout DecodedDocuments) {
        fields.reportUnknown(["mirrors", "configs"], into: &result.diagnostics)
        var tlsByHost: [String: TLSSettings] = [:]
        var configuredHosts = Set<String>()
        var configOrder: [(host: String, location: SourceLocation)] = []
        do {
            for pair in try entries(fields.value("configs"), "configs") {
                do {
                    let key = References.schemeSeparator(pair.name) != nil ? String(pair.name.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first ?? "") : pair.name
                    let host = key == "*" ? "*" : try References.host(key, "configs key", at: pair.key.location)
                    // `configs: {host:}` with no value is valid in k3s and configures nothing.
                    guard !pair.value.isNull else { continue }
                    configuredHosts.insert(host)
                    let what = "configs.\(pair.name)"
                    let config = try FieldReader(pair.value, what)
                    config.reportUnknown(["auth", "tls"], into: &result.diagnostics)
                    if let tlsNode = config.value("tls"), !tlsNode.isNull {
                        tlsByHost[host] = try tls(tlsNode, "\(what).tls", into: &result.diagnostics)
                        configOrder.append((host, pair.key.location))
                    }
                    if let authNode = config.value("auth"), !authNode.isNull {
                        result.credentials.append(try credentials(authNode, host: host, "\(what).auth", into: &result.diagnostics))
                    }
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }

        // k3s's configForHost, for endpoints: the settings under the host an image's registry is
        // really reached at (registry-1.docker.io for docker.io) win, then the host as written.
        // `configs."*"` is not a fallback for other hosts: it configures only `_default`.
        func tlsFor(_ host: String) -> TLSSettings {
            let reached = References.defaultHost(host)
            if reached != host, let tls = tlsByHost[reached] { return tls }
            return tlsByHost[host] ?? TLSSettings()
        }
        // For a source's own upstream, k3s first takes a `configs` entry under its own name (even
        // one with only auth), and only without one looks up as for endpoints.
        func sourceTLSFor(_ host: String) -> TLSSettings {
            configuredHosts.contains(host) ? tlsByHost[host] ?? TLSSettings() : tlsFor(host)
        }

        var mirroredHosts = Set<String>()
        do {
            for pair in try entries(fields.value("mirrors"), "mirrors") {
                do {
                    let what = "mirrors.\(pair.name)"
                    let source = try References.source(pair.name, forms: [.everyRegistry], at: pair.key.location)
                    if let host = source.host { mirroredHosts.insert(host) } else { mirroredHosts.insert("*") }
                    // `mirrors: {docker.io:}` with no value is valid in k3s (its own tests and
                    // embedded-registry setups use it): the registry is enabled, nothing to render.
                    let entry: FieldReader? = pair.value.isNull ? nil : try FieldReader(pair.value, what)
                    entry?.reportUnknown(["endpoint", "rewrite"], into: &result.diagnostics)
                    var endpointNodes: [YAMLNode] = []
                    if let node = entry?.value("endpoint"), !node.isNull { endpointNodes = try node.list("\(what).endpoint") }
                    var mirrors: [MirrorEndpoint] = []
                    for node in endpointNodes {
                        do {
                            var parsed = try References.mirror(
                                try node.string("each endpoint"), defaultScheme: .k3s, pathMeaning: .k3sEndpoint,
                                allowScheme: true, at: node.location)
                            // An endpoint spelled docker.io is reached at registry-1.docker.io.
                            parsed.host = References.defaultHost(parsed.host)
                            let mirror = MirrorEndpoint(
                                scheme: parsed.scheme, host: parsed.host, path: parsed.path,
                                overridePath: parsed.overridePath, tls: tlsFor(registryName(parsed.host)), origins: [node.location])
                            // k3s skips an endpoint whose URL it has already seen, silently keeping the first.
                            if mirrors.contains(where: { $0.identity == mirror.identity }) {
                                result.diagnostics.warning("endpoint \(mirror.displayURL) is listed twice for \(source); the later entry is ignored", at: node.location)
                                continue
                            }
                            mirrors.append(mirror)
                        } catch {
                            result.diagnostics.append(error)
                        }
                    }
                    // k3s: the registry's own default endpoint (same URL, scheme included), last
                    // in the list, is the upstream and not a mirror.
                    if let last = mirrors.last, let host = source.host, isDefaultEndpoint(last, of: host) {
                        mirrors.removeLast()
                    }
                    var rewrites: [RewriteRule] = []
                    if let rewriteNode = entry?.value("rewrite"), !rewriteNode.isNull {
                        for rule in try rewriteNode.pairs("\(what).rewrite") {
                            rewrites.append(
                                RewriteRule(
                                    pattern: rule.name, replacement: try rule.value.string("\(what).rewrite.\(rule.name)"),
                                    location: rule.key.location))
                        }
                    }
                    let sourceTLS = source.host.map(sourceTLSFor) ?? tlsByHost["*"] ?? TLSSettings()
                    // Nothing but the defaults: k3s writes no hosts file for it, and neither do we.
                    if mirrors.isEmpty && sourceTLS.isEmpty && rewrites.isEmpty { continue }
                    result.declarations.append(
                        RegistryDeclaration(
                            source: source, location: pair.key.location, policy: nil, policyLocation: nil,
                            mirrors: mirrors, sourceTLS: sourceTLS, rewrites: rewrites))
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }

        // k3s also writes a hosts file for a host that only has TLS settings (`*` included, as
        // `_default`), so that pulls straight from it use them.
        for (host, location) in configOrder where !mirroredHosts.contains(host) {
            guard let tls = tlsByHost[host], !tls.isEmpty else { continue }
            result.declarations.append(
                RegistryDeclaration(
                    source: host == "*" ? .everyRegistry : .host(host), location: location, policy: nil, policyLocation: nil,
                    mirrors: [], sourceTLS: tls))
        }
    }

    /// The pairs of a mapping, or none for an absent or empty (`mirrors:`) value.
    static func entries(_ node: YAMLNode?, _ what: String) throws(Diagnostic) -> [YAMLPair] {
        guard let node, !node.isNull else { return [] }
        return try node.pairs(what)
    }

    /// The registry an endpoint host belongs to, for looking up its configs (k3s reverses the
    /// docker.io normalization).
    static func registryName(_ host: String) -> String { host == "registry-1.docker.io" ? "docker.io" : host }

    static func isDefaultEndpoint(_ mirror: MirrorEndpoint, of host: String) -> Bool {
        mirror.scheme == References.k3sDefaultScheme(host) && mirror.path.isEmpty && !mirror.overridePath
            && mirror.host == References.defaultHost(host)
    }

    static func tls(_ node: YAMLNode, _ what: String, into diagnostics: inout DiagnosticList) throws(Diagnostic) -> TLSSettings {
        let f = try FieldReader(node, what)
        f.reportUnknown(["ca_file", "cert_file", "key_file", "insecure_skip_verify"], into: &diagnostics)
        let tls = TLSSettings(
            caFiles: try f.string("ca_file").map { [$0] } ?? [], clientCertificate: try f.string("cert_file"),
            clientKey: try f.string("key_file"), skipVerify: try f.bool("insecure_skip_verify") ?? false)
        if (tls.clientCertificate == nil) != (tls.clientKey == nil) {
            throw .error("\(what) needs both cert_file and key_file for a client certificate", at: node.location)
        }
        for path in tls.caFiles + [tls.clientCertificate, tls.clientKey].compactMap({ $0 }) where !path.hasPrefix("/") {
            throw .error("\(what): TLS file \(References.quoted(path)) must be an absolute path", at: node.location)
        }
        return tls
    }

    /// Credentials are secrets: a problem in them is reported by place and field name only, never
    /// with the value (a password typed where a mapping belongs must not reach the journal).
    static func credentials(_ node: YAMLNode, host: String, _ what: String, into diagnostics: inout DiagnosticList) throws(Diagnostic) -> HostCredentials {
        guard case .mapping(let pairs) = node.content else {
            throw .error("\(what) must be a mapping of username, password, auth, identity_token (its value is not shown)", at: node.location)
        }
        for pair in pairs where ["username", "password", "auth", "identity_token"].contains(pair.name) && !pair.value.isNull {
            guard case .scalar = pair.value.content else {
                throw .error("\(what).\(pair.name) must be a string (its value is not shown)", at: pair.value.location)
            }
        }
        let f = try FieldReader(node, what)
        f.reportUnknown(["username", "password", "auth", "identity_token"], into: &diagnostics)
        return HostCredentials(
            host: host, username: try f.string("username"), password: try f.string("password").map(Secret.init),
            auth: try f.string("auth").map(Secret.init), identityToken: try f.string("identity_token").map(Secret.init),
            location: node.location)
    }
}
