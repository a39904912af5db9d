import Diagnostics
import MarkedYAML

#if canImport(Glibc)
import Glibc
#endif

/// Credentials as a MirrorSet declares them, before their files are read: a value is given
/// inline or as a file (the recommended form), or they all come from a docker `config.json` /
/// containers `auth.json` (`authFile`).
struct CredentialSpec: Sendable {
    enum Value: Sendable {
        case inline(Secret)
        case file(String, SourceLocation)
    }

    var host: String
    var location: SourceLocation
    var what: String
    var username: Value?
    var password: Value?
    var identityToken: Value?
    var authFile: (path: String, location: SourceLocation)?

    static let keys = ["username", "usernameFile", "password", "passwordFile", "identityToken", "identityTokenFile", "authFile"]

    /// Parses a MirrorSet `credentials:` / `sourceCredentials:` mapping. A problem is reported by
    /// place and field name only: a value is never shown (a password typed where a path belongs
    /// must not reach the journal).
    static func parse(_ node: YAMLNode, host: String, _ what: String, into diagnostics: inout DiagnosticList) throws(Diagnostic) -> CredentialSpec {
        guard case .mapping(let pairs) = node.content else {
            throw .error("\(what) must be a mapping of \(keys.joined(separator: ", ")) (its value is not shown)", at: node.location)
        }
        for pair in pairs where keys.contains(pair.name) && !pair.value.isNull {
            guard case .scalar = pair.value.content else {
                throw .error("\(what).\(pair.name) must be a string (its value is not shown)", at: pair.value.location)
            }
        }
        let f = try FieldReader(node, what)
        f.reportUnknown(keys, into: &diagnostics)
        func value(_ key: String) throws(Diagnostic) -> Value? {
            let inline = f.value(key)
            let file = f.value(key + "File")
            if let inline, file != nil {
                throw .error("\(what) has both \(key) and \(key)File; give one", at: inline.location)
            }
            if let inline {
                let text = try inline.string("\(what).\(key)")
                guard !text.isEmpty else { throw .error("\(what).\(key) is empty", at: inline.location) }
                return .inline(Secret(text))
            }
            if let file {
                return .file(try path(file, "\(what).\(key)File"), file.location)
            }
            return nil
        }
        var spec = CredentialSpec(
            host: host, location: node.location, what: what, username: try value("username"), password: try value("password"),
            identityToken: try value("identityToken"))
        if let authNode = f.value("authFile") {
            spec.authFile = (try path(authNode, "\(what).authFile"), authNode.location)
            if spec.username != nil || spec.password != nil || spec.identityToken != nil {
                throw .error("\(what): authFile gives every value; it cannot be combined with username, password or identityToken", at: authNode.location)
            }
            return spec
        }
        if spec.password != nil && spec.username == nil {
            throw .error("\(what): a password needs a username (username or usernameFile)", at: node.location)
        }
        if spec.password == nil && spec.identityToken == nil {
            throw .error("\(what) needs passwordFile (or password), identityToken(File), or authFile", at: node.location)
        }
        return spec
    }

    static func path(_ node: YAMLNode, _ what: String) throws(Diagnostic) -> String {
        let text = try node.string(what)
        guard text.hasPrefix("/"), !text.contains("\0") else {
            throw .error("\(what) must be an absolute path", at: node.location)
        }
        return text
    }

    /// Reads the files and gives the credentials, or the problems (never a value).
    func resolve(root: HostRoot, into diagnostics: inout DiagnosticList) -> HostCredentials? {
        var result = HostCredentials(host: host, location: location)
        var failed = false
        func read(_ hostPath: String, _ at: SourceLocation, _ field: String) -> [UInt8]? {
            switch CredentialFiles.read(hostPath, root: root) {
            case .failure(let message):
                diagnostics.error("\(what).\(field) \(hostPath): \(message)", at: at)
                failed = true
                return nil
            case .success(let read):
                if !result.files.contains(hostPath) { result.files.append(hostPath) }
                if read.readableByOthers {
                    diagnostics.warning("\(what).\(field) \(hostPath) is readable by group or others (mode \(String(read.mode, radix: 8))); run chmod 600 on it", at: at)
                }
                return read.bytes
            }
        }
        func secret(_ value: Value?, _ field: String) -> Secret? {
            switch value {
            case nil: return nil
            case .inline(let s): return s
            case .file(let hostPath, let at):
                guard let bytes = read(hostPath, at, field + "File") else { return nil }
                switch CredentialFiles.secretText(bytes) {
                case .failure(let why):
                    diagnostics.error("\(what).\(field)File \(hostPath): \(why) (its content is not shown)", at: at)
                    failed = true
                    return nil
                case .success(let text): return Secret(text)
                }
            }
        }
        if let authFile {
            guard let bytes = read(authFile.path, authFile.location, "authFile") else { return nil }
            switch CredentialFiles.lookup(host: host, inAuthFile: bytes) {
            case .failure(let why):
                diagnostics.error("\(what).authFile \(authFile.path): \(why)", at: authFile.location)
                return nil
            case .success(let entry):
                result.username = entry.username
                result.password = entry.password
                result.auth = entry.auth
                result.identityToken = entry.identityToken
                return result
            }
        }
        result.username = secret(username, "username")?.value
        result.password = secret(password, "password")
        result.identityToken = secret(identityToken, "identityToken")
        return failed ? nil : result
    }
}

/// Why a credentials file was refused: never a byte of its content.
public struct CredentialProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reading secret files: through the one safe reader, with the trust walk of desired state.
public enum CredentialFiles {
    /// A secret or auth file over this size is refused unread.
    public static let limit = 64 << 10

    public struct Read {
        public var bytes: [UInt8]
        public var mode: UInt32
        public var readableByOthers: Bool { mode & 0o044 != 0 }
    }

    /// The file's bytes (owner, links and directories checked as for desired state: root's and
    /// not writable by others), or what is wrong with it, never a byte of its content.
    public static func read(_ hostPath: String, root: HostRoot) -> Result<Read, CredentialProblem> {
        let path = root.path(hostPath)
        switch FileSystem.read(path, limit: limit, trustCheck: true, root: root) {
        case .failure(.missing):
            let hidden = ["/root/", "/home/", "/run/user/", "/tmp/", "/var/tmp/"].contains { hostPath.hasPrefix($0) }
            return .failure(CredentialProblem(
                "file does not exist" + (hidden ? " (mirror-agent.service runs with ProtectHome=yes and PrivateTmp=yes: the daemon cannot see /root, /home, /run/user or the host's /tmp; keep secrets under /etc/mirror-agent/)" : "")))
        case .failure(.tooLarge(let size)): return .failure(CredentialProblem("file is \(size) bytes, larger than the \(limit)-byte limit for a credentials file; refusing to read it"))
        case .failure(let error): return .failure(CredentialProblem(DesiredStateLoader.describe(error)))
        case .success(let bytes):
            var info = stat()
            let mode = stat(path, &info) == 0 ? UInt32(info.st_mode & 0o7777) : 0
            return .success(Read(bytes: bytes, mode: mode))
        }
    }

    /// A secret file's text: UTF-8, one line (a trailing line break is dropped), no control
    /// characters, not empty.
    public static func secretText(_ bytes: [UInt8]) -> Result<String, CredentialProblem> {
        var bytes = bytes[...]
        if bytes.last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        guard !bytes.isEmpty else { return .failure(CredentialProblem("the file is empty")) }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(CredentialProblem("the file is not UTF-8 text")) }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            return .failure(CredentialProblem("the file holds more than one line or a control character"))
        }
        return .success(text)
    }

    public struct AuthEntry: Sendable, Equatable {
        public var username: String?
        public var password: Secret?
        public var auth: Secret?
        public var identityToken: Secret?
    }

    /// The entry for `host` in a docker `config.json` / containers `auth.json`
    /// (`{"auths": {"<host>": {"auth": "<base64 user:password>"}}}`). Keys are matched as docker
    /// and containers/image do: `host[:port]`, or a URL whose host part is it (`https://host/v1/`).
    /// Credential helpers (`credHelpers`, `credsStore`) are not run.
    public static func lookup(host: String, inAuthFile bytes: [UInt8]) -> Result<AuthEntry, CredentialProblem> {
        // JSON is YAML (flow style) once its tabs, which valid JSON has only as white space
        // outside strings, are spaces. Errors never quote the file.
        let cleaned = bytes.map { $0 == UInt8(ascii: "\t") ? UInt8(ascii: " ") : $0 }
        let documents: [YAMLDocument]
        do {
            documents = try YAMLParser.parse(cleaned, mapping: LocationMapping(file: "auth file"), limits: YAMLLimits(maxBytes: limit, maxNodes: 100_000, maxDepth: 32))
        } catch {
            return .failure(CredentialProblem("not a valid JSON auth file (line \(error.location?.line ?? 0); its content is not shown)"))
        }
        guard documents.count == 1, let root = documents[0].root, case .mapping(let top) = root.content else {
            return .failure(CredentialProblem("not a JSON object with \"auths\" (its content is not shown)"))
        }
        let auths = top.first { $0.name == "auths" }?.value
        var entries: [YAMLPair] = []
        if let auths, case .mapping(let pairs) = auths.content { entries = pairs }
        func keyHost(_ key: String) -> String {
            var k = Substring(key)
            for scheme in ["https://", "http://"] where k.lowercased().hasPrefix(scheme) { k = k.dropFirst(scheme.count) }
            return String(k.prefix { $0 != "/" }).lowercased()
        }
        guard let entry = entries.first(where: { $0.name.lowercased() == host }) ?? entries.first(where: { keyHost($0.name) == host }) else {
            let helpers = top.contains { $0.name == "credHelpers" || $0.name == "credsStore" }
            return .failure(CredentialProblem("no entry for \(host) under \"auths\"\(helpers ? " (credential helpers, credHelpers/credsStore, are not run)" : "")"))
        }
        guard case .mapping(let fields) = entry.value.content else {
            return .failure(CredentialProblem("the entry for \(host) is not an object (its content is not shown)"))
        }
        func field(_ name: String) -> String? {
            guard let node = fields.first(where: { $0.name.lowercased() == name })?.value, case .scalar(let s) = node.content, !node.isNull, !s.text.isEmpty else { return nil }
            return s.text
        }
        let result = AuthEntry(
            username: field("username"), password: field("password").map(Secret.init), auth: field("auth").map(Secret.init),
            identityToken: field("identitytoken").map(Secret.init))
        if let auth = result.auth, decodeBasicAuth(auth.value) == nil {
            return .failure(CredentialProblem("the entry for \(host) has an \"auth\" that is not base64 of user:password (its value is not shown)"))
        }
        guard result.auth != nil || result.password != nil || result.identityToken != nil else {
            return .failure(CredentialProblem("the entry for \(host) has no auth, password or identitytoken"))
        }
        return .success(result)
    }

    /// `base64(user:password)` -> (user, password), as containerd's `ParseAuth` reads it.
    public static func decodeBasicAuth(_ text: String) -> (String, String)? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var table = [Int](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = i }
        var bits = 0, count = 0
        var out: [UInt8] = []
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0, !chars.isEmpty else { return nil }
        for (i, c) in chars.enumerated() {
            if c == UInt8(ascii: "=") {
                guard i >= chars.count - 2 else { return nil }
                continue
            }
            let v = table[Int(c)]
            guard v >= 0 else { return nil }
            bits = (bits << 6) | v
            count += 6
            if count >= 8 {
                count -= 8
                out.append(UInt8((bits >> count) & 0xff))
            }
        }
        guard let decoded = String(validating: out, as: UTF8.self), let colon = decoded.firstIndex(of: ":") else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }
}
