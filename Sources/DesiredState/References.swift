import Diagnostics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Parsing and checking of registry hosts, sources and mirror locations.
///
/// The grammar follows the distribution reference grammar (the one containerd, containers/image
/// and openshift/api's patterns share): a host is DNS labels or a bracketed IPv6 literal with an
/// optional port; repository path components are lowercase `[a-z0-9]` runs joined by `.`, `_`,
/// `__` or dashes. Anything else is refused, which also keeps every host safe to use as a
/// directory name (no `/`, `..`, NUL or white space can get through).
enum References {
    /// Checks `host[:port]` and returns it lowercased.
    static func host(_ text: String, _ what: String, in whole: String? = nil, at location: SourceLocation) throws(Diagnostic) -> String {
        if let problem = hostProblem(text) {
            throw .error("\(what) \(quoted(whole ?? text)) is not a valid registry host[:port]: \(problem)", at: location)
        }
        return text.lowercased()
    }

    static func hostProblem(_ text: String) -> String? {
        if text.isEmpty { return "it is empty" }
        // The common case, checked on bytes: a DNS name or IPv4 address with an optional port.
        if isPlainHost(text) { return nil }
        if text.unicodeScalars.contains(where: { $0.value == 0 }) { return "it contains a NUL character" }
        if text.unicodeScalars.contains(where: { $0.properties.isWhitespace }) { return "it contains white space" }
        if text.contains("/") || text.contains("\\") { return "it contains a path separator" }
        if text.contains("..") { return "it contains \"..\"" }
        if text.contains("@") { return "it contains \"@\" (credentials do not belong in a host)" }
        var name = Substring(text)
        var port: Substring?
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return "an IPv6 address is missing its \"]\"" }
            let inside = name[name.index(after: name.startIndex)..<close]
            if let problem = ipv6Problem(inside) { return "\(quoted("[" + inside + "]")) is not an IPv6 address: \(problem)" }
            let rest = name[name.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return "unexpected text after the IPv6 address" }
                port = rest.dropFirst()
            }
            name = ""
        } else if let colon = name.lastIndex(of: ":") {
            port = name[name.index(after: colon)...]
            name = name[..<colon]
            if name.contains(":") { return "an IPv6 address must be written in brackets, [::1]:5000" }
        }
        if let port, let problem = portProblem(port) { return problem }
        if name.isEmpty && !text.hasPrefix("[") { return "the host name before the port is empty" }
        if !name.isEmpty {
            if name.count > 253 { return "it is longer than 253 characters" }
            for label in name.split(separator: ".", omittingEmptySubsequences: false) {
                if label.isEmpty { return "it has an empty label (a leading, trailing or double dot)" }
                if label.count > 63 { return "label \(quoted(String(label))) is longer than 63 characters" }
                guard label.allSatisfy({ $0.isASCIIAlnum || $0 == "-" }) else {
                    return "label \(quoted(String(label))) may only use letters, digits and \"-\""
                }
                if label.first == "-" || label.last == "-" { return "label \(quoted(String(label))) starts or ends with \"-\"" }
            }
        }
        return nil
    }

    /// A port as the agent writes it in directory names and URLs: 1 to 65535, in its canonical
    /// form. distribution/reference's grammar takes any digits (`[0-9]+`), but `host:0080` and
    /// `host:80` are one endpoint with two spellings, and containerd looks up `host_80_` only.
    static func portProblem(_ port: Substring) -> String? {
        guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCIIDigit), let n = Int(port), (1...65535).contains(n) else {
            return "port \(quoted(String(port))) is not a number from 1 to 65535"
        }
        if port.first == "0" { return "port \(quoted(String(port))) has a leading zero; write \(n)" }
        return nil
    }

    /// An IPv6 address in brackets, compressed or not (RFC 4291 2.2 forms 1 and 2): eight groups
    /// of 1 to 4 hex digits, or fewer with exactly one `::`. Zone identifiers and the dotted
    /// IPv4-mapped form are refused, as distribution/reference's `ipv6address` excludes them;
    /// unlike its `[a-fA-F0-9:]+`, text such as `[::::]` that no resolver accepts is refused too.
    static func ipv6Problem(_ text: Substring) -> String? {
        if text.isEmpty { return "it is empty" }
        if text.contains("%") { return "zone identifiers are not accepted" }
        if text.contains(".") { return "the dotted IPv4 form is not accepted" }
        guard text.allSatisfy({ $0.isHexDigit && $0.isASCII || $0 == ":" }) else { return "only hex digits and \":\" are allowed" }
        var halves: [String] = [""]
        var previousColon = false
        for c in text {
            if c == ":" && previousColon && !halves[halves.count - 1].hasSuffix("::") {
                halves[halves.count - 1].removeLast()
                halves.append("")
                previousColon = false
                continue
            }
            halves[halves.count - 1].append(c)
            previousColon = c == ":"
        }
        if halves.count > 2 { return "\"::\" may appear only once" }
        func groups(_ part: String) -> [Substring]? {
            if part.isEmpty { return [] }
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            return items.allSatisfy({ (1...4).contains($0.count) }) ? items : nil
        }
        guard let left = groups(halves[0]), let right = halves.count == 2 ? groups(halves[1]) : [] else {
            return "each group has 1 to 4 hex digits"
        }
        let count = left.count + right.count
        if halves.count == 2 ? count > 7 : count != 8 { return "it needs 8 groups, or fewer with one \"::\"" }
        return nil
    }

    /// `label(.label)*(:port)?` with labels of [A-Za-z0-9-] not starting or ending with "-".
    static func isPlainHost(_ text: String) -> Bool {
        var labelLength = 0
        var previous: UInt8 = UInt8(ascii: ".")
        var port: Int?
        var total = 0
        for byte in text.utf8 {
            total += 1
            if let p = port {
                // A leading zero ("host:080") is left to hostProblem, which explains it.
                guard byte >= 48 && byte <= 57, p < 10000, !(p == 0 && byte == 48) else { return false }
                port = p * 10 + Int(byte - 48)
                continue
            }
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                labelLength += 1
            case UInt8(ascii: "-"):
                guard previous != UInt8(ascii: ".") else { return false }
                labelLength += 1
            case UInt8(ascii: "."), UInt8(ascii: ":"):
                guard labelLength > 0, labelLength <= 63, previous != UInt8(ascii: "-") else { return false }
                labelLength = 0
                if byte == UInt8(ascii: ":") { port = 0 }
            default:
                return false
            }
            previous = byte
        }
        if let port { return port >= 1 && port <= 65535 && previous != UInt8(ascii: ":") }
        return labelLength > 0 && labelLength <= 63 && previous != UInt8(ascii: "-") && total <= 253
    }

    /// Checks a repository path (`org/repo`) against the reference grammar.
    static func repositoryPathProblem(_ path: Substring) -> String? {
        if path.isEmpty { return "the repository path is empty" }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty { return "it has an empty path component (a double or trailing \"/\")" }
            if component == "." || component == ".." { return "it contains \"\(component)\" as a path component" }
            if !isRepositoryComponent(component) {
                return "path component \(quoted(String(component))) must be lowercase letters and digits, joined by \".\", \"_\", \"__\" or \"-\""
            }
        }
        return nil
    }

    static func isRepositoryComponent(_ s: Substring) -> Bool {
        // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
        var chars = Array(s.utf8)[...]
        func alnumRun() -> Bool {
            var n = 0
            while let c = chars.first, (c >= 97 && c <= 122) || (c >= 48 && c <= 57) { chars = chars.dropFirst(); n += 1 }
            return n > 0
        }
        guard alnumRun() else { return false }
        while let c = chars.first {
            switch c {
            case UInt8(ascii: "."): chars = chars.dropFirst()
            case UInt8(ascii: "_"):
                chars = chars.dropFirst()
                if chars.first == UInt8(ascii: "_") { chars = chars.dropFirst() }
            case UInt8(ascii: "-"):
                while chars.first == UInt8(ascii: "-") { chars = chars.dropFirst() }
            default: return false
            }
            guard alnumRun() else { return false }
        }
        return true
    }

    /// Which source forms a dialect accepts.
    struct SourceForms: OptionSet, Sendable {
        let rawValue: Int
        static let everyRegistry = SourceForms(rawValue: 1)
        static let wildcardDomain = SourceForms(rawValue: 2)
        static let repository = SourceForms(rawValue: 4)
    }

    /// Parses a source: `host[:port]`, `host[:port]/repo/path`, `*.domain` or `*`.
    static func source(_ text: String, forms: SourceForms, at location: SourceLocation) throws(Diagnostic) -> RegistrySource {
        let what = "source"
        if text == "*" {
            guard forms.contains(.everyRegistry) else {
                throw .error("source \"*\" (every registry) is not accepted in this dialect", at: location)
            }
            return .everyRegistry
        }
        if schemeSeparator(text) != nil {
            throw .error("source \(quoted(text)) must not have a scheme; write the registry as host[:port][/path]", at: location)
        }
        if text.hasPrefix("/") {
            throw .error("source \(quoted(text)) is a path, not a registry host[:port]", at: location)
        }
        try refuseTagOrDigest(text, what, at: location)
        if text.hasSuffix("/") {
            throw .error("source \(quoted(text)) must not end with \"/\"", at: location)
        }
        if text.hasPrefix("*.") {
            guard forms.contains(.wildcardDomain) else {
                throw .error("source \(quoted(text)): a \"*.\" wildcard is not accepted in this dialect", at: location)
            }
            let domain = String(text.dropFirst(2))
            if domain.contains("/") || domain.contains(":") {
                throw .error("source \(quoted(text)): a \"*.\" wildcard takes a bare domain, with no port or path", at: location)
            }
            return .wildcardDomain(try host(domain, what, in: text, at: location))
        }
        if text.contains("*") {
            throw .error("source \(quoted(text)): \"*\" is only accepted alone or as a leading \"*.\"", at: location)
        }
        guard let slash = text.firstIndex(of: "/") else {
            return .host(try host(text, what, at: location))
        }
        let hostPart = String(text[..<slash])
        let path = text[text.index(after: slash)...]
        let checkedHost = try host(hostPart, what, in: text, at: location)
        guard forms.contains(.repository) else {
            throw .error("source \(quoted(text)) must be a registry host[:port] without a repository path in this dialect", at: location)
        }
        if let problem = repositoryPathProblem(path) {
            throw .error("source \(quoted(text)) is not a valid repository: \(problem)", at: location)
        }
        return .repository(host: checkedHost, path: String(path))
    }

    /// A tag (`:1.0` after the last `/`) or a digest (`@sha256:...`) names one image, not a place
    /// to mirror.
    static func refuseTagOrDigest(_ text: String, _ what: String, at location: SourceLocation) throws(Diagnostic) {
        if text.contains("@") {
            throw .error("\(what) \(quoted(text)) must not carry a digest (\"@...\"); mirrors map registries and repositories, not images", at: location)
        }
        if let slash = text.firstIndex(of: "/"), text[slash...].contains(":") {
            throw .error("\(what) \(quoted(text)) must not carry a tag (\":...\" after the repository); mirrors map registries and repositories, not images", at: location)
        }
    }

    /// How a mirror location without a scheme is reached.
    enum DefaultScheme {
        /// OpenShift and MirrorSet: HTTPS unless the host is in `insecureRegistries`.
        case httpsUnlessInsecure(Set<String>)
        /// k3s: HTTPS, but plain HTTP for localhost on a port other than 443.
        case k3s
    }

    /// What a mirror's path means.
    enum MirrorPathMeaning {
        /// The repository namespace the mirror keeps the source's images under (OpenShift,
        /// MirrorSet without overridePath).
        case repositoryNamespace
        /// The URL path as containerd and k3s read it: "", "/" and "/v2" are the standard root,
        /// anything else is the literal API root (`override_path`).
        case k3sEndpoint
        /// The literal API root (MirrorSet with `overridePath: true`).
        case apiRoot
    }

    /// Parses a mirror location into scheme, host, path and override flag.
    static func mirror(
        _ text: String, defaultScheme: DefaultScheme, pathMeaning: MirrorPathMeaning, allowScheme: Bool,
        at location: SourceLocation
    ) throws(Diagnostic) -> (scheme: URLScheme, host: String, path: String, overridePath: Bool) {
        let what = "mirror"
        var rest = Substring(text)
        var scheme: URLScheme?
        if let range = schemeSeparator(text) {
            guard allowScheme else {
                throw .error("mirror \(quoted(text)) must not have a scheme in this dialect; list plain-HTTP mirrors in agent.yaml insecureRegistries", at: location)
            }
            let name = text[..<range.lowerBound].lowercased()
            guard let s = URLScheme(rawValue: name) else {
                throw .error("mirror \(quoted(text)) has scheme \(Quote.value(name)); only http and https are supported", at: location)
            }
            scheme = s
            rest = text[range.upperBound...]
        }
        if rest.contains("?") || rest.contains("#") {
            throw .error("mirror \(quoted(text)) must not have a query or fragment", at: location)
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        var path = String(rest[slash...])
        if authority.contains("@") {
            throw .error("mirror \(quoted(text)) must not carry credentials (user@host); use the runtime's credential configuration", at: location)
        }
        let host = try host(authority, what, in: text, at: location)
        let effectiveScheme: URLScheme
        switch defaultScheme {
        case .httpsUnlessInsecure(let insecure):
            effectiveScheme = scheme ?? (insecure.contains(host) ? .http : .https)
        case .k3s:
            effectiveScheme = scheme ?? k3sDefaultScheme(host)
        }
        var overridePath = false
        switch pathMeaning {
        case .repositoryNamespace:
            try refuseTagOrDigest(String(rest), what, at: location)
            if path.hasSuffix("/") {
                throw .error("mirror \(quoted(text)) must not end with \"/\"", at: location)
            }
            if !path.isEmpty, let problem = repositoryPathProblem(path.dropFirst()) {
                throw .error("mirror \(quoted(text)) is not a valid repository namespace: \(problem)", at: location)
            }
        case .k3sEndpoint, .apiRoot:
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            if path == "/" { path = "" }
            if pathMeaning == .k3sEndpoint && (path.isEmpty || path == "/v2") {
                path = ""
            } else if !path.isEmpty {
                overridePath = true
                if let problem = apiRootProblem(path) {
                    throw .error("mirror \(quoted(text)) has an unusable path: \(problem)", at: location)
                }
                // "/v2/<namespace>" as an API root is the same mirror as that namespace.
                if path.hasPrefix("/v2/"), repositoryPathProblem(path.dropFirst(4)) == nil {
                    path = String(path.dropFirst(3))
                    overridePath = false
                }
            } else if pathMeaning == .apiRoot {
                throw .error("mirror \(quoted(text)): overridePath needs the API root path in the URL", at: location)
            }
        }
        return (effectiveScheme, host, path, overridePath)
    }

    /// The range of "://" in a URL, if any.
    static func schemeSeparator(_ text: String) -> Range<String.Index>? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix("://") { return index..<text.index(index, offsetBy: 3) }
            index = text.index(after: index)
        }
        return nil
    }

    static func apiRootProblem(_ path: String) -> String? {
        for segment in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { return "it has an empty path segment" }
            if segment == "." || segment == ".." { return "it contains \"\(segment)\"" }
            if !segment.allSatisfy({ $0.isASCIIAlnum || "-._~".contains($0) }) {
                return "segment \(quoted(String(segment))) may only use letters, digits, \"-\", \".\", \"_\" and \"~\""
            }
        }
        return nil
    }

    /// containerd's `docker.IsLocalhost`: the name `localhost`, or an address that parses as a
    /// loopback IP. A DNS name that merely starts with "127." is not loopback.
    static func isLocalhost(_ host: String) -> Bool {
        let name = hostName(host)
        if name.lowercased() == "localhost" { return true }
        if name.hasPrefix("[") && name.hasSuffix("]") { return isIPv6Loopback(name.dropFirst().dropLast()) }
        return isIPv4Loopback(name)
    }

    /// A dotted-quad IPv4 address (no leading zeros, as Go's parser) in 127.0.0.0/8.
    static func isIPv4Loopback(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let n = Int(part), n <= 255 else { return false }
            if part.count > 1 && part.first == "0" { return false }
        }
        return parts[0] == "127"
    }

    /// `::1` in any spelling (`0:0:0:0:0:0:0:1`, `::0:1`), or an IPv4-mapped loopback address.
    static func isIPv6Loopback(_ text: Substring) -> Bool {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, String(text), &bytes) == 1 else { return false }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// k3s's default scheme for an endpoint written without one (its normalizeEndpointAddress):
    /// plain HTTP for a loopback host on an explicit port other than 443, HTTPS otherwise (so a
    /// bare `localhost` is HTTPS).
    static func k3sDefaultScheme(_ host: String) -> URLScheme {
        guard isLocalhost(host), let port = port(of: host), port != "443" else { return .https }
        return .http
    }

    /// How the source itself is reached when nothing says otherwise: plain HTTP when the host is
    /// listed in `insecureRegistries`, or is loopback on a port other than 443 (as containerd and
    /// k3s default it); HTTPS otherwise.
    static func upstreamScheme(_ host: String, insecure: Set<String>) -> URLScheme {
        insecure.contains(host) ? .http : k3sDefaultScheme(host)
    }

    /// containerd's `docker.DefaultHost`: the host an image reference's registry is reached at.
    static func defaultHost(_ host: String) -> String { host == "docker.io" ? "registry-1.docker.io" : host }

    static func hostName(_ host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[...close]) }
        if let colon = host.lastIndex(of: ":") { return String(host[..<colon]) }
        return host
    }

    static func port(of host: String) -> String? {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let rest = host[host.index(after: close)...]
            return rest.hasPrefix(":") ? String(rest.dropFirst()) : nil
        }
        if let colon = host.lastIndex(of: ":") { return String(host[host.index(after: colon)...]) }
        return nil
    }

    static func quoted(_ s: String) -> String { Quote.value(s) }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIIAlnum: Bool { isASCII && (isLetter || isNumber) }
}
