import Diagnostics
import MarkedYAML

/// mirror-agent's own dialect, `kind: MirrorSet` (`apiVersion: mirror-agent/v1`): every field of
/// the model, spelled out. The README documents it with a full example.
enum MirrorSetDialect {
    static let registryKeys = ["source", "mirrors", "mirrorSourcePolicy", "pullFrom", "sourceTLS", "sourceCredentials"]
    static let mirrorKeys = ["url", "capabilities", "pullFrom", "overridePath", "tls", "headers", "credentials"]
    static let tlsKeys = ["ca", "clientCertificate", "clientKey", "insecureSkipVerify"]

    static func decode(_ fields: FieldReader, context: DecodingContext, into result: inout DecodedDocuments) {
        fields.reportUnknown(Dialect.objectKeys + ["spec"], into: &result.diagnostics)
        do {
            let spec = try FieldReader(try fields.required("spec"), "spec")
            spec.reportUnknown(["registries"], into: &result.diagnostics)
            for (index, entry) in (try spec.value("registries")?.list("spec.registries") ?? []).enumerated() {
                do {
                    result.declarations.append(
                        try registry(entry, "spec.registries[\(index)]", context: context, into: &result.diagnostics, credentials: &result.credentialSpecs))
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }
    }

    static func registry(
        _ node: YAMLNode, _ what: String, context: DecodingContext, into diagnostics: inout DiagnosticList, credentials: inout [CredentialSpec]
    ) throws(Diagnostic) -> RegistryDeclaration {
        let f = try FieldReader(node, what)
        f.reportUnknown(registryKeys, into: &diagnostics)
        let sourceNode = try f.required("source")
        let source = try References.source(
            try sourceNode.string("\(what).source"), forms: [.everyRegistry, .wildcardDomain, .repository], at: sourceNode.location)
        let policy = try Dialect.policy(f.value("mirrorSourcePolicy"))
        let defaultPullFrom = try pullFrom(f.value("pullFrom")) ?? .all
        var mirrors: [MirrorEndpoint] = []
        for (index, mirrorNode) in (try f.value("mirrors")?.list("\(what).mirrors") ?? []).enumerated() {
            do {
                let name = "\(what).mirrors[\(index)]"
                let parsed = try mirror(mirrorNode, name, defaultPullFrom: defaultPullFrom, context: context, into: &diagnostics)
                mirrors.append(parsed)
                if mirrorNode.scalar == nil, let node = try FieldReader(mirrorNode, name).value("credentials") {
                    credentials.append(try CredentialSpec.parse(node, host: parsed.host, "\(name).credentials", into: &diagnostics))
                }
            } catch {
                diagnostics.append(error)
            }
        }
        var sourceTLS = TLSSettings()
        if let node = f.value("sourceTLS") { sourceTLS = try tls(node, "\(what).sourceTLS", into: &diagnostics) }
        if let node = f.value("sourceCredentials") {
            // The host the runtime contacts for the source itself (docker.io: registry-1.docker.io).
            guard let host = source.host else {
                throw .error("\(what).sourceCredentials needs a source with one registry host (not \(source))", at: node.location)
            }
            credentials.append(try CredentialSpec.parse(node, host: host, "\(what).sourceCredentials", into: &diagnostics))
        }
        return RegistryDeclaration(
            source: source, location: sourceNode.location, policy: policy?.0, policyLocation: policy?.1,
            mirrors: mirrors, sourceTLS: sourceTLS)
    }

    static func mirror(
        _ node: YAMLNode, _ what: String, defaultPullFrom: PullFrom, context: DecodingContext, into diagnostics: inout DiagnosticList
    ) throws(Diagnostic) -> MirrorEndpoint {
        // A bare string is shorthand for `url:` with every other field at its default.
        if node.scalar != nil {
            let parsed = try References.mirror(
                try node.string(what), defaultScheme: .httpsUnlessInsecure(context.insecureRegistries),
                pathMeaning: .repositoryNamespace, allowScheme: true, at: node.location)
            return MirrorEndpoint(
                scheme: parsed.scheme, host: parsed.host, path: parsed.path,
                capabilities: defaultCapabilities(defaultPullFrom), pullFrom: defaultPullFrom, origins: [node.location])
        }
        let f = try FieldReader(node, what)
        f.reportUnknown(mirrorKeys, into: &diagnostics)
        let urlNode = try f.required("url")
        let overridePath = try f.bool("overridePath") ?? false
        let parsed = try References.mirror(
            try urlNode.string("\(what).url"), defaultScheme: .httpsUnlessInsecure(context.insecureRegistries),
            pathMeaning: overridePath ? .apiRoot : .repositoryNamespace, allowScheme: true, at: urlNode.location)
        let pull = try pullFrom(f.value("pullFrom")) ?? defaultPullFrom
        var capabilities = defaultCapabilities(pull)
        if let capsNode = f.value("capabilities") {
            capabilities = []
            for item in try capsNode.list("\(what).capabilities") {
                let name = try item.string("each capability")
                guard let capability = Capability(rawValue: name) else {
                    throw .error("capability \(Quote.value(name)) is not one of pull, resolve, push", at: item.location)
                }
                if capabilities.contains(capability) {
                    throw .error("capability \(Quote.value(name)) is listed twice", at: item.location)
                }
                capabilities.append(capability)
            }
            if capabilities.isEmpty {
                throw .error("\(what).capabilities is empty: the mirror would never be used", at: capsNode.location)
            }
            capabilities.sort()
        }
        var headers: [HTTPHeader] = []
        for pair in try f.value("headers")?.pairs("\(what).headers") ?? [] {
            guard !pair.name.isEmpty, pair.name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw .error("header name \(References.quoted(pair.name)) is not a valid HTTP header name", at: pair.key.location)
            }
            let values: [String]
            do { values = try pair.value.stringOrList("\(what).headers.\(pair.name)") } catch {
                throw .error("\(what).headers.\(pair.name) must be a string or a list of strings (its value is not shown)", at: pair.value.location)
            }
            if let bad = values.first(where: { $0.contains("\n") || $0.contains("\r") || $0.contains("\0") }) {
                // Header values are often credentials (Authorization, tokens): never shown.
                throw .error("header \(pair.name) value contains a line break or NUL (its value is not shown)", at: pair.value.location)
            }
            headers.append(HTTPHeader(name: pair.name, values: values))
        }
        var tlsSettings = TLSSettings()
        if let node = f.value("tls") { tlsSettings = try tls(node, "\(what).tls", into: &diagnostics) }
        return MirrorEndpoint(
            scheme: parsed.scheme, host: parsed.host, path: parsed.path, overridePath: parsed.overridePath,
            capabilities: capabilities, pullFrom: pull, tls: tlsSettings, headers: headers, origins: [node.location])
    }

    /// A digest-only mirror gets only `pull`: containerd asks for `resolve` on tag pulls alone.
    static func defaultCapabilities(_ pullFrom: PullFrom) -> [Capability] {
        pullFrom == .digestOnly ? [.pull] : [.pull, .resolve]
    }

    static func pullFrom(_ node: YAMLNode?) throws(Diagnostic) -> PullFrom? {
        guard let node else { return nil }
        let text = try node.string("pullFrom")
        guard let value = PullFrom(rawValue: text) else {
            var message = "pullFrom \(Quote.value(text)) is not one of all, digest-only, tag-only"
            if let s = closestMatch(to: text, in: PullFrom.allCases.map(\.rawValue)) { message += "; did you mean \"\(s)\"?" }
            throw .error(message, at: node.location)
        }
        return value
    }

    static func tls(_ node: YAMLNode, _ what: String, into diagnostics: inout DiagnosticList) throws(Diagnostic) -> TLSSettings {
        let f = try FieldReader(node, what)
        f.reportUnknown(tlsKeys, into: &diagnostics)
        let tls = TLSSettings(
            caFiles: try f.value("ca")?.stringOrList("\(what).ca") ?? [], clientCertificate: try f.string("clientCertificate"),
            clientKey: try f.string("clientKey"), skipVerify: try f.bool("insecureSkipVerify") ?? false)
        if (tls.clientCertificate == nil) != (tls.clientKey == nil) {
            throw .error("\(what) needs both clientCertificate and clientKey", at: node.location)
        }
        for path in tls.caFiles + [tls.clientCertificate, tls.clientKey].compactMap({ $0 }) where !path.hasPrefix("/") {
            throw .error("\(what): TLS file \(References.quoted(path)) must be an absolute path", at: node.location)
        }
        return tls
    }
}
