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
        var configOrder: [(host: String, location: SourceLocation)] = []
        do {
            for pair in try fields.value("configs")?.pairs("configs") ?? [] {
                do {
                    let key = References.schemeSeparator(pair.name) != nil ? String(pair.name.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first ?? "") : pair.name
                    let host = key == "*" ? "*" : try References.host(key, "configs key", at: pair.key.location)
                    let what = "configs.\(pair.name)"
                    let config = try FieldReader(pair.value, what)
                    config.reportUnknown(["auth", "tls"], into: &result.diagnostics)
                    if let tlsNode = config.value("tls") {
                        tlsByHost[host] = try tls(tlsNode, "\(what).tls", into: &result.diagnostics)
                        configOrder.append((host, pair.key.location))
                    }
                    if let authNode = config.value("auth") {
                        result.credentials.append(try credentials(authNode, host: host, "\(what).auth", into: &result.diagnostics))
                    }
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }

        func tlsFor(_ host: String) -> TLSSettings { tlsByHost[host] ?? tlsByHost["*"] ?? TLSSettings() }

        var mirroredHosts = Set<String>()
        do {
            for pair in try fields.value("mirrors")?.pairs("mirrors") ?? [] {
                do {
                    let what = "mirrors.\(pair.name)"
                    let source = try References.source(pair.name, forms: [.everyRegistry], at: pair.key.location)
                    if let host = source.host { mirroredHosts.insert(host) }
                    let entry = try FieldReader(pair.value, what)
                    entry.reportUnknown(["endpoint", "rewrite"], into: &result.diagnostics)
                    let endpointNodes = try entry.value("endpoint")?.list("\(what).endpoint") ?? []
                    var mirrors: [MirrorEndpoint] = []
                    for node in endpointNodes {
                        do {
                            let parsed = try References.mirror(
                                try node.string("each endpoint"), defaultScheme: .k3s, pathMeaning: .k3sEndpoint,
                                allowScheme: true, at: node.location)
                            mirrors.append(
                                MirrorEndpoint(
                                    scheme: parsed.scheme, host: parsed.host, path: parsed.path,
                                    overridePath: parsed.overridePath, tls: tlsFor(parsed.host), origins: [node.location]))
                        } catch {
                            result.diagnostics.append(error)
                        }
                    }
                    // k3s: the registry's own default endpoint, last in the list, is the upstream.
                    if let last = mirrors.last, let host = source.host, isDefaultEndpoint(last, of: host) {
                        mirrors.removeLast()
                    }
                    var rewrites: [RewriteRule] = []
                    for rule in try entry.value("rewrite")?.pairs("\(what).rewrite") ?? [] {
                        rewrites.append(
                            RewriteRule(
                                pattern: rule.name, replacement: try rule.value.string("\(what).rewrite.\(rule.name)"),
                                location: rule.key.location))
                    }
                    result.declarations.append(
                        RegistryDeclaration(
                            source: source, location: pair.key.location, policy: nil, policyLocation: nil,
                            mirrors: mirrors, sourceTLS: source.host.map(tlsFor) ?? TLSSettings(), rewrites: rewrites))
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }

        // k3s also writes a hosts entry for a host that only has TLS settings, so that pulls
        // straight from it use them.
        for (host, location) in configOrder where host != "*" && !mirroredHosts.contains(host) {
            guard let tls = tlsByHost[host], !tls.isEmpty else { continue }
            result.declarations.append(
                RegistryDeclaration(
                    source: .host(host), location: location, policy: nil, policyLocation: nil, mirrors: [], sourceTLS: tls))
        }
    }

    static func isDefaultEndpoint(_ mirror: MirrorEndpoint, of host: String) -> Bool {
        guard mirror.scheme == .https, mirror.path.isEmpty, !mirror.overridePath else { return false }
        let upstream = host == "docker.io" ? "registry-1.docker.io" : host
        return mirror.host == upstream || mirror.host == upstream + ":443"
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
