import DesiredState
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads a TLS source file named in desired state (a host path) for the certs.d copies.
public typealias TLSSourceReader = @Sendable (String) -> Result<[UInt8], FileSystem.ReadError>

/// Renders `/etc/containers/certs.d/<host[:port]>/` for CRI-O and everything else built on
/// containers/image (podman, skopeo, buildah).
///
/// What containers/image reads (pkg/tlsclientconfig `SetupCertificates`, docker/docker_client.go
/// `dockerCertDir`): the first existing directory among `~/.config/containers/certs.d/<host:port>`,
/// `/etc/containers/certs.d/<host:port>` and `/etc/docker/certs.d/<host:port>` (the directory is
/// named by the reference's domain as written: `docker.io`, `mirror.example:5000`, `[::1]:5000`);
/// in it, every `*.crt` is a CA added to the system roots, every `X.cert` a client certificate
/// whose key must be `X.key` (a `.key` without its `.cert`, or the other way round, fails every
/// pull from that host). So per host: `ca.crt`, `client.cert`, `client.key`.
///
/// The files are copies, not links: only PEM blocks of the right kind are copied (a path that
/// names anything else copies nothing), the key is 0600 whatever its source's mode, and the
/// daemon re-reads the sources when their directories change, so a rotated CA or certificate is
/// followed. A source that cannot be read keeps the copy in place (with a warning) rather than
/// taking a working CA away.
public struct CRIOCertsRenderer: Sendable {
    public static let defaultDirectory = "/etc/containers/certs.d"
    public static let caName = "ca.crt"
    public static let certName = "client.cert"
    public static let keyName = "client.key"

    public var directory: String
    public var root: HostRoot
    public var read: TLSSourceReader
    /// The text of a file the agent wrote before (a host path), to keep when a source is unreadable.
    public var previous: @Sendable (String) -> String?

    public init(directory: String = Self.defaultDirectory, root: HostRoot = .system, read: @escaping TLSSourceReader, previous: @escaping @Sendable (String) -> String? = { _ in nil }) {
        self.directory = directory
        self.root = root
        self.read = read
        self.previous = previous
    }

    /// The TLS settings of each host CRI-O contacts, gathered from sources and mirrors.
    struct HostTLS {
        var caFiles: [String] = []
        var client: (certificate: String, key: String)?
        var origins: [SourceLocation] = []
    }

    /// Hosts with CA files or a client certificate, in host order.
    static func hosts(_ model: MirrorModel, warnings: inout [Diagnostic]) -> [(String, HostTLS)] {
        var byHost: [String: HostTLS] = [:]
        func add(_ host: String, _ tls: TLSSettings, _ origins: [SourceLocation], what: String) {
            guard !tls.caFiles.isEmpty || tls.clientCertificate != nil else { return }
            var entry = byHost[host] ?? HostTLS()
            for file in tls.caFiles where !entry.caFiles.contains(file) { entry.caFiles.append(file) }
            if let certificate = tls.clientCertificate, let key = tls.clientKey {
                if let existing = entry.client, existing != (certificate, key) {
                    warnings.append(
                        .warning(
                            "\(what) names a client certificate for \(host) other than one declared before; containers/image uses one per host directory, so \(existing.certificate) is kept",
                            at: origins.first))
                } else {
                    entry.client = (certificate, key)
                }
            }
            entry.origins += origins
            byHost[host] = entry
        }
        for registry in model.registries {
            switch registry.source {
            case .host(let host), .repository(let host, _):
                add(host, registry.sourceTLS, registry.origins, what: "source \(registry.source)")
            case .everyRegistry, .wildcardDomain:
                if !registry.sourceTLS.caFiles.isEmpty || registry.sourceTLS.clientCertificate != nil {
                    warnings.append(
                        .warning(
                            "TLS settings of \(registry.source) are not written for CRI-O: /etc/containers/certs.d has one directory per host, none for \(registry.source == .everyRegistry ? "every registry" : "a domain wildcard")",
                            at: registry.origins.first))
                }
            }
            // Mirrors the drop-in leaves out (override_path) and plain-HTTP ones need no certs.d.
            for mirror in registry.mirrors where !mirror.overridePath && mirror.scheme == .https {
                add(mirror.host, mirror.tls, mirror.origins, what: "mirror \(mirror.displayURL)")
            }
        }
        return byHost.sorted { $0.key < $1.key }
    }

    public func render(_ model: MirrorModel) -> RenderResult {
        var result = RenderResult()
        for (host, tls) in Self.hosts(model, warnings: &result.warnings) {
            let header = ManagedHeader.lines(origins: tls.origins, root: root)
            let at = tls.origins.first
            if !tls.caFiles.isEmpty {
                var blocks: [String] = []
                var complete = true
                for file in tls.caFiles {
                    switch pem(file, kind: .certificate, at: at, warnings: &result.warnings) {
                    case .some(let found): blocks += found
                    case .none: complete = false
                    }
                }
                let relative = host + "/" + Self.caName
                if complete, !blocks.isEmpty {
                    result.files.append(file(relative, header + copied(tls.caFiles) + blocks.joined(), mode: 0o644))
                } else if let kept = kept(relative, at: at, warnings: &result.warnings) {
                    result.files.append(file(relative, kept, mode: 0o644))
                } else if !blocks.isEmpty {
                    result.files.append(file(relative, header + copied(tls.caFiles) + blocks.joined(), mode: 0o644))
                }
            }
            if let client = tls.client {
                let certRelative = host + "/" + Self.certName
                let keyRelative = host + "/" + Self.keyName
                let certificate = pem(client.certificate, kind: .certificate, at: at, warnings: &result.warnings).flatMap { $0.isEmpty ? nil : $0 }
                let key = pem(client.key, kind: .privateKey, at: at, warnings: &result.warnings).flatMap { $0.isEmpty ? nil : $0 }
                // A .cert without its .key (or the reverse) fails every pull from the host: both or neither.
                if let certificate, let key {
                    result.files.append(file(certRelative, header + copied([client.certificate]) + certificate.joined(), mode: 0o644))
                    result.files.append(file(keyRelative, header + copied([client.key]) + key.joined(), mode: 0o600, secret: true))
                } else if let oldCert = previous(directory + "/" + certRelative), let oldKey = previous(directory + "/" + keyRelative) {
                    result.warnings.append(.warning("keeping the client certificate and key in \(root.path(directory + "/" + host)) as they are until their sources can be read again", at: at))
                    result.files.append(file(certRelative, oldCert, mode: 0o644))
                    result.files.append(file(keyRelative, oldKey, mode: 0o600, secret: true))
                }
            }
        }
        return result
    }

    private func file(_ relative: String, _ contents: String, mode: UInt32, secret: Bool = false) -> RenderedFile {
        var file = RenderedFile(baseDirectory: directory, relativePath: relative, contents: contents, mode: mode, runtime: .crio)
        file.secret = secret
        return file
    }

    private func copied(_ files: [String]) -> String {
        "# Copied from \(files.map { TOML.commentSafe($0) }.joined(separator: ", ")); rewritten when they change.\n"
    }

    private func kept(_ relative: String, at: SourceLocation?, warnings: inout [Diagnostic]) -> String? {
        guard let text = previous(directory + "/" + relative) else { return nil }
        warnings.append(.warning("keeping \(root.path(directory + "/" + relative)) as it is until its sources can be read again", at: at))
        return text
    }

    enum PEMKind { case certificate, privateKey }

    /// The PEM blocks of `kind` in a source file, or nil (with a warning) when it cannot be read
    /// or holds none. Never quotes the file's content.
    private func pem(_ path: String, kind: PEMKind, at: SourceLocation?, warnings: inout [Diagnostic]) -> [String]? {
        let what = kind == .certificate ? "certificate" : "private key"
        switch read(path) {
        case .failure(let error):
            let reason: String
            switch error {
            case .missing: reason = "it does not exist"
            case .notRegularFile: reason = "it is not a regular file"
            case .tooLarge(let size): reason = "it is too large (\(size) bytes)"
            case .unsafe(let why), .system(let why): reason = why
            }
            warnings.append(.warning("TLS file \(root.path(path)) cannot be copied to \(root.path(directory)): \(reason)", at: at))
            return nil
        case .success(let bytes):
            let blocks = Self.pemBlocks(String(decoding: bytes, as: UTF8.self), kind: kind)
            if blocks.isEmpty {
                warnings.append(.warning("TLS file \(root.path(path)) holds no PEM \(what); nothing of it is copied to \(root.path(directory))", at: at))
                return nil
            }
            return blocks
        }
    }

    /// PEM blocks whose label fits `kind`, each re-emitted from its own lines; a block whose body
    /// is not base64 is left out, so nothing but PEM data is ever copied.
    static func pemBlocks(_ text: String, kind: PEMKind) -> [String] {
        var blocks: [String] = []
        var label: String?
        var body: [Substring] = []
        var valid = true
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingWhitespace()
            if let current = label {
                if line == "-----END \(current)-----" {
                    if valid && !body.isEmpty { blocks.append("-----BEGIN \(current)-----\n" + body.map { $0 + "\n" }.joined() + "-----END \(current)-----\n") }
                    label = nil
                } else if line.hasPrefix("-----") {
                    label = nil
                } else if !line.isEmpty {
                    if !line.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" || $0 == "=") }) { valid = false }
                    body.append(Substring(line))
                }
            } else if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----"), line.count > 16 {
                let name = String(line.dropFirst(11).dropLast(5))
                let accepted: Bool
                switch kind {
                case .certificate: accepted = name == "CERTIFICATE"
                case .privateKey: accepted = name == "PRIVATE KEY" || name == "RSA PRIVATE KEY" || name == "EC PRIVATE KEY"
                }
                if accepted {
                    label = name
                    body = []
                    valid = true
                }
            }
        }
        return blocks
    }
}

/// Registry credentials for CRI-O: an auth file (containers-auth.json(5)) only root can read,
/// and a crio.conf drop-in that makes it CRI-O's `global_auth_file`.
///
/// How CRI-O picks credentials (cri-o server/image_pull.go, server/server.go; containers/image
/// docker/docker_image_src.go, pkg/docker/config): a CRI `PullImage` with auth (the kubelet's
/// image pull secret or credential provider) sets `SystemContext.DockerAuthConfig`; containers/
/// image uses it only for the source's own registry and clears it for every mirror on another
/// host, which then gets the credentials the auth file has for the mirror's reference (keys
/// `host/repo/path`, then `host`). `global_auth_file` becomes `SystemContext.AuthFilePath` when
/// CRI-O starts (not on reload); with it set, only that file is read, not root's default ones
/// (`/run/containers/0/auth.json`, `~/.config/containers/auth.json`, `~/.docker/config.json`).
/// So the drop-in is written only when no crio.conf file sets `global_auth_file` and none of
/// those default files exists: the agent never takes credentials away from CRI-O.
public struct CRIOAuthRenderer: Sendable {
    public static let authFile = "/etc/containers/mirror-agent-auth.json"
    public static let crioDropIn = "/etc/crio/crio.conf.d/99-mirror-agent-auth.conf"
    /// The default auth file the agent checks before setting `global_auth_file`: where
    /// containers/image looks first for root without XDG_RUNTIME_DIR (crio.service has none), and
    /// where `podman login` as root writes. Root's home files (`~/.config/containers/auth.json`,
    /// `~/.docker/config.json`, `~/.dockercfg`) come after it; they are not checked: the unit's
    /// ProtectHome=yes hides /root from the daemon, and `apply` must decide as the daemon does.
    public static let defaultAuthFiles = ["/run/containers/0/auth.json"]

    public var root: HostRoot
    /// CRI-O is installed (`/etc/crio` exists under the root).
    public var crioInstalled: Bool
    /// `global_auth_file` as CRI-O's own files set it (ours left out), and the file that set it.
    public var globalAuthFile: (path: String, setIn: String)?
    /// Default auth files that exist (host paths).
    public var presentDefaultAuthFiles: [String]

    public init(root: HostRoot = .system, crioInstalled: Bool, globalAuthFile: (path: String, setIn: String)? = nil, presentDefaultAuthFiles: [String] = []) {
        self.root = root
        self.crioInstalled = crioInstalled
        self.globalAuthFile = globalAuthFile
        self.presentDefaultAuthFiles = presentDefaultAuthFiles
    }

    public func render(_ model: MirrorModel) -> RenderResult {
        var result = RenderResult()
        var entries: [String: [String: String]] = [:]
        var origins: [SourceLocation] = []
        for credentials in model.credentials.sorted(by: { $0.host < $1.host }) {
            guard let entry = Self.entry(credentials) else {
                result.warnings.append(.warning("credentials for \(credentials.host) have no username, password, auth or identity_token; nothing is written for CRI-O", at: credentials.location))
                continue
            }
            entries[credentials.host] = entry
            origins.append(credentials.location)
        }
        // k3s: configs."registry-1.docker.io" also serves docker.io unless docker.io has its own.
        if let hub = entries["registry-1.docker.io"], entries["docker.io"] == nil { entries["docker.io"] = hub }
        guard !entries.isEmpty else { return result }
        // The JSON encoder escapes every value; sorted keys keep the file stable.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let encoded = try? encoder.encode(["auths": entries]),
            let json = String(data: encoded, encoding: .utf8)
        else { return result }
        var auth = RenderedFile(baseDirectory: AtomicWriter.split(hostPath: Self.authFile).directory, relativePath: AtomicWriter.split(hostPath: Self.authFile).name, contents: json + "\n", mode: 0o600, runtime: .crio)
        auth.secret = true
        result.files.append(auth)

        let at = origins.first
        if !crioInstalled { return result }
        if let existing = globalAuthFile {
            result.warnings.append(
                .warning(
                    "CRI-O reads registry credentials from \(existing.path) (global_auth_file in \(existing.setIn)), not from \(Self.authFile): mirror credentials reach CRI-O only if that file has entries for the mirror hosts, or if global_auth_file points to \(Self.authFile)",
                    at: at))
            return result
        }
        if !presentDefaultAuthFiles.isEmpty {
            result.warnings.append(
                .warning(
                    "CRI-O reads registry credentials from \(presentDefaultAuthFiles.map { root.path($0) }.joined(separator: ", ")); setting its global_auth_file to \(Self.authFile) would stop that, so it is not set: mirror credentials reach CRI-O only if that file has entries for the mirror hosts, or once it is gone",
                    at: at))
            return result
        }
        let dropIn = ManagedHeader.lines(origins: origins, root: root)
            + "# Mirror credentials: CRI-O reads this at start (global_auth_file is not reloaded by SIGHUP).\n"
            + "[crio.image]\nglobal_auth_file = \(TOML.string(Self.authFile))\n"
        result.files.append(
            RenderedFile(baseDirectory: AtomicWriter.split(hostPath: Self.crioDropIn).directory, relativePath: AtomicWriter.split(hostPath: Self.crioDropIn).name, contents: dropIn, runtime: .crio))
        return result
    }

    /// One `auths` entry (the fields of its JSON object), or nil when there is nothing to write.
    static func entry(_ credentials: HostCredentials) -> [String: String]? {
        var fields: [String: String] = [:]
        if let auth = credentials.auth?.value, !auth.isEmpty {
            fields["auth"] = auth
        } else if credentials.username != nil || credentials.password != nil {
            let pair = (credentials.username ?? "") + ":" + (credentials.password?.value ?? "")
            fields["auth"] = Data(pair.utf8).base64EncodedString()
        }
        if let token = credentials.identityToken?.value, !token.isEmpty {
            // containers/image reads an identity token only next to an `auth` that decodes to
            // "user:..."; Docker uses the user "<token>".
            if fields.isEmpty { fields["auth"] = Data("<token>:".utf8).base64EncodedString() }
            fields["identitytoken"] = token
        }
        return fields.isEmpty ? nil : fields
    }

    /// `[crio.image] global_auth_file` as CRI-O's files set it, our own drop-in left out.
    public static func globalAuthFile(root: HostRoot) -> (path: String, setIn: String)? {
        var found: (path: String, setIn: String)?
        for path in CRIOSettings.files(root: root) where path != crioDropIn {
            guard case .success(let bytes) = FileSystem.read(root.path(path), limit: 4 << 20) else { continue }
            guard let value = CRIOSettings.imageString(String(decoding: bytes, as: UTF8.self), key: "global_auth_file") else { continue }
            found = value.isEmpty ? nil : (value, root.path(path))
        }
        return found
    }
}
