import DesiredState
import Diagnostics

/// An image reference as a pod spec writes it (`nginx`, `host:port/path/app:tag`,
/// `name@sha256:...`), normalized the way both runtimes normalize it: a name without a registry
/// is on docker.io, a one-component docker.io name is under `library/`, no tag means `latest`.
public struct ImageReference: Sendable, Equatable, Codable {
    public var written: String
    /// The registry host (`docker.io`, `host:port`).
    public var domain: String
    /// The repository path inside the registry (`library/nginx`).
    public var path: String
    public var tag: String?
    public var digest: String?
    /// True when no registry was written: CRI-O resolves such a name through short-name aliases
    /// and unqualified-search-registries; containerd's CRI plugin always takes docker.io.
    public var unqualified: Bool

    public var name: String { domain + "/" + path }
    public var byDigest: Bool { digest != nil }
    /// The tag (or `latest`) or digest the runtime asks the registry for.
    public var object: String { digest ?? tag ?? "latest" }
    public var normalized: String {
        if let digest { return name + (tag.map { ":" + $0 } ?? "") + "@" + digest }
        return name + ":" + (tag ?? "latest")
    }

    /// Parses a reference; the error says what is wrong with it.
    public static func parse(_ text: String) -> Result<ImageReference, ReferenceError> {
        guard !text.isEmpty else { return .failure(ReferenceError("the reference is empty")) }
        guard text.count <= 4096, text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            return .failure(ReferenceError("the reference holds spaces, control or non-ASCII characters"))
        }
        var rest = Substring(text)
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let d = rest[rest.index(after: at)...]
            guard isDigest(d) else { return .failure(ReferenceError("\"\(d)\" is not a digest (algorithm:hex, e.g. sha256: and 64 hex digits)")) }
            digest = String(d)
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let t = rest[rest.index(after: colon)...]
            guard isTag(t) else { return .failure(ReferenceError("\"\(t)\" is not a valid tag")) }
            tag = String(t)
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        var domain = "docker.io"
        var unqualified = true
        if components.count > 1, let first = components.first, first.contains(".") || first.contains(":") || first == "localhost" {
            if let problem = ReferenceGrammar.hostProblem(String(first)) { return .failure(ReferenceError("registry \"\(first)\": \(problem)")) }
            domain = first == "index.docker.io" ? "docker.io" : String(first)
            components.removeFirst()
            unqualified = false
        }
        guard !components.isEmpty, components.allSatisfy({ ReferenceGrammar.isRepositoryComponent($0) }) else {
            return .failure(ReferenceError("\"\(rest)\" is not a valid repository name (lower-case letters, digits and separators . _ __ - between path components)"))
        }
        if domain == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        return .success(
            ImageReference(written: text, domain: domain, path: components.joined(separator: "/"), tag: tag, digest: digest, unqualified: unqualified))
    }

    /// The same image on another registry (a CRI-O search registry).
    func qualified(on registry: String) -> ImageReference {
        var copy = self
        copy.domain = registry
        copy.unqualified = false
        if registry == "docker.io", !path.contains("/") { copy.path = "library/" + path }
        if registry != "docker.io", path.hasPrefix("library/"), !written.contains("library/") { copy.path = String(path.dropFirst("library/".count)) }
        return copy
    }

    static func isDigest(_ s: Substring) -> Bool {
        guard let colon = s.firstIndex(of: ":") else { return false }
        let algorithm = s[..<colon], hex = s[s.index(after: colon)...]
        guard !algorithm.isEmpty, algorithm.allSatisfy({ $0.isLetter && $0.isLowercase || $0.isNumber || "+._-".contains($0) }) else { return false }
        guard hex.count >= 32, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return false }
        return algorithm != "sha256" || hex.count == 64
    }

    static func isTag(_ s: Substring) -> Bool {
        guard let first = s.first, s.count <= 128, first.isLetter || first.isNumber || first == "_" else { return false }
        return s.allSatisfy { ($0.isLetter || $0.isNumber) && $0.isASCII || "_.-".contains($0) }
    }
}

public struct ReferenceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// What `explain` found: where a runtime would pull an image from, and why. Every fact names
/// the file (a path on this machine) and line it came from, where there is one.
public struct Explanation: Sendable, Codable, Equatable {
    public struct Fact: Sendable, Codable, Equatable {
        public var text: String
        public var file: String?
        public var line: Int?
        public init(_ text: String, file: String? = nil, line: Int? = nil) {
            self.text = text
            self.file = file
            self.line = line
        }
        public var place: String { file.map { $0 + (line.map { ":\($0)" } ?? "") } ?? "" }
    }

    public struct Endpoint: Sendable, Codable, Equatable {
        /// `scheme://host/path` (containerd) or the location the reference is rewritten to (CRI-O).
        public var url: String
        /// host[:port] the runtime connects to.
        public var host: String
        /// `mirror`, `server` (hosts.toml `server`), `upstream` (the registry itself).
        public var role: String
        public var capabilities: [String] = []
        /// Whether the runtime asks this endpoint for this reference at all.
        public var tried: Bool = true
        /// Why it is skipped, when it is.
        public var skipped: String?
        public var tls: [String] = []
        public var insecure: Bool = false
        public var overridePath: Bool = false
        /// CRI-O: the reference as asked of this endpoint.
        public var pulls: String?
        public var file: String?
        public var line: Int?
    }

    public var runtime: String
    public var reference: ImageReference
    public var facts: [Fact] = []
    public var endpoints: [Endpoint] = []
    public var blocked: Bool = false
    public var warnings: [Fact] = []
    /// The first endpoint the runtime asks; it serves the pull unless it fails.
    public var firstEndpoint: Endpoint? = nil
    /// `--probe`: each endpoint asked for the manifest in order, up to the first that has it.
    public var probe: [ProbeStep]? = nil

    public struct ProbeStep: Sendable, Codable, Equatable {
        public var url: String
        public var status: Int?
        public var error: String?
        public var seconds: Double
        public var serves: Bool
        /// How the request was authorized ("basic", "bearer token from <host>"...); no secret.
        public var auth: String?
        public init(url: String, status: Int?, error: String?, seconds: Double, serves: Bool, auth: String? = nil) {
            self.url = url
            self.status = status
            self.error = error
            self.seconds = seconds
            self.serves = serves
            self.auth = auth
        }
    }

    /// The manifest request each endpoint gets for this reference, as the runtime makes it.
    public func manifestRequests() -> [(endpoint: Endpoint, urls: [String], method: String, accept: [String])] {
        let accept = [
            "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
        ]
        return endpoints.filter(\.tried).map { e in
            if runtime == "containerd" {
                // resolver.go: HEAD <host path>/<repo>/manifests/<object>, ?ns=<registry> when the
                // endpoint is not the registry itself; Accept as in resolver.go, then */*.
                var url = e.url + "/" + reference.path + "/manifests/" + reference.object
                if e.host != reference.domain { url += "?ns=" + reference.domain }
                return (e, [url], "HEAD", accept + ["*/*"])
            }
            // containers/image: GET https://<host>/v2/<path>/manifests/<object>; insecure falls
            // back to http.
            let location = e.url
            let host = String(location.split(separator: "/", maxSplits: 1).first ?? "")
            let path = location.split(separator: "/", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
            let connect = host == "docker.io" ? "registry-1.docker.io" : host
            let tail = "/v2/" + path + "/manifests/" + reference.object
            return (e, ["https://" + connect + tail] + (e.insecure ? ["http://" + connect + tail] : []), "GET", accept)
        }
    }

    mutating func finish() { firstEndpoint = blocked ? nil : endpoints.first { $0.tried } }
}

extension Explanation {
    /// The text report.
    public func render() -> String {
        var out = "\(runtime): \(reference.normalized)"
        if reference.written != reference.normalized { out += " (written \"\(reference.written)\")" }
        out += reference.byDigest ? ", a digest pull\n" : ", a tag pull\n"
        for fact in facts { out += "  " + fact.text + (fact.place.isEmpty ? "" : "  [\(fact.place)]") + "\n" }
        if blocked {
            out += "the pull is refused: the registry is blocked\n"
        } else {
            out += "endpoints, in the order \(runtime) tries them:\n"
            for (i, e) in endpoints.enumerated() {
                var line = "  \(i + 1). \(e.url)  \(e.role)"
                if !e.capabilities.isEmpty { line += " [\(e.capabilities.joined(separator: ", "))]" }
                if let pulls = e.pulls { line += " asks for \(pulls)" }
                if e.insecure { line += " insecure" }
                if e.overridePath { line += " override_path" }
                if !e.tls.isEmpty { line += " " + e.tls.joined(separator: " ") }
                if let skipped = e.skipped { line += "  -- skipped: \(skipped)" }
                if let file = e.file { line += "  [\(file)\(e.line.map { ":\($0)" } ?? "")]" }
                out += line + "\n"
            }
            out += "first endpoint asked: \(firstEndpoint?.url ?? "none")\n"
            if let probe {
                out += "probe (manifest request, as the runtime makes it):\n"
                for step in probe {
                    let answer = step.status.map { "HTTP \($0)" } ?? (step.error ?? "no answer")
                    out += "  \(step.url)  \(answer)\(step.auth.map { " (\($0))" } ?? "")  \(formatDouble("%.3f", step.seconds)) s\(step.serves ? "  <- serves this pull" : "")\n"
                }
                if !probe.contains(where: \.serves) { out += "  no endpoint serves this manifest\n" }
            }
        }
        for warning in warnings { out += "warning: " + warning.text + (warning.place.isEmpty ? "" : "  [\(warning.place)]") + "\n" }
        return out
    }
}

extension Explanation {
    /// One endpoint as the daemon's status file reports it.
    public struct EndpointHealthState: Sendable, Decodable {
        public var url: String
        public var registries: [String]
        public var state: String
    }

    /// Warns about each mirror for this registry that the daemon found down or demoted (left
    /// out of the runtime files until it is up again), from its status file.
    public mutating func addHealth(_ states: [EndpointHealthState], statusFile: String) {
        let name = reference.name
        for state in states where state.state == "demoted" || state.state == "down" {
            // A source is a host, a host/path prefix, or "*" (every registry).
            let applies = state.registries.contains { $0 == "*" || name == $0 || name.hasPrefix($0 + "/") || reference.domain == $0 }
            guard applies else { continue }
            let hostOf = { (url: String) -> String in
                let rest = url.firstRange(of: "://").map { String(url[$0.upperBound...]) } ?? url
                return String(rest.split(separator: "/", maxSplits: 1).first ?? "")
            }
            let listed = endpoints.contains { $0.host == hostOf(state.url) }
            let text =
                state.state == "demoted"
                ? "mirror \(state.url) is demoted by the daemon (down): it is left out of the runtime files until it is up again"
                : "mirror \(state.url) is down by the daemon's probes" + (listed ? "; the runtime still asks it first and waits for it to fail" : "")
            warnings.append(.init(text, file: statusFile))
        }
    }
}
