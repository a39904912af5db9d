import DesiredState
import Diagnostics
@preconcurrency import TOMLKit

/// Registry credentials for containerd's CRI plugin: `registry.configs."<host>".auth` (`username`,
/// `password`, `auth`, `identitytoken`), read by the plugin for every host it contacts, mirror or
/// upstream, when the kubelet passes no credentials of its own (containerd 1.6/1.7
/// pkg/cri/server/image_pull.go `registryHosts`; 2.x internal/cri/server/images/image_pull.go
/// `PullImage`, both the local and the transfer-service pull). hosts.toml has no place for them.
///
/// They go into the file that owns the CRI plugin's table (Debian: config.toml itself), never
/// into a new import: containerd 1.x replaces a whole plugin table from an import, so an import
/// holding only `registry.configs` would drop `config_path` and everything else of the plugin.
/// That file is then kept mode 0600. Each table the agent writes carries
/// ``ContainerdPrerequisites/credentialsMarker`` on the line above it: tables with it are the
/// agent's to replace or remove; tables without it are the admin's and are only replaced for a
/// host the desired state gives credentials for.
enum ContainerdCredentials {
    struct Edit {
        var file: ContainerdConfigFiles.File?
        var remove: [String] = []
        var append: [[String]] = []
        var changes: [String] = []
    }

    struct Plan {
        var checks: [ContainerdPrerequisites.Check] = []
        var edits: [Edit] = []
    }

    /// The host containerd asks credentials for: docker.io's images come from registry-1.docker.io.
    static func contactedHost(_ host: String) -> String { host == "docker.io" ? "registry-1.docker.io" : host }

    /// The fields as containerd's `AuthConfig` names them, in a fixed order.
    static func fields(_ c: HostCredentials) -> [(String, String)] {
        var out: [(String, String)] = []
        if let u = c.username { out.append(("username", u)) }
        if let p = c.password { out.append(("password", p.value)) }
        if let a = c.auth { out.append(("auth", a.value)) }
        if let t = c.identityToken { out.append(("identitytoken", t.value)) }
        return out
    }

    static func isOurs(_ file: ContainerdConfigFiles.File, _ path: [String]) -> Bool {
        guard let table = file.layout.table(path), table.headerLine > 0 else { return false }
        return file.layout.lines[table.headerLine - 1].trimmingCharacters(in: " \t").hasPrefix(ContainerdPrerequisites.credentialsMarker)
    }

    static func holdsOurCredentials(_ text: String) -> Bool {
        TOMLLayout(text).lines.contains { $0.trimmingCharacters(in: " \t").hasPrefix(ContainerdPrerequisites.credentialsMarker) }
    }

    /// The block written for one host (`path` is its `registry.configs."<host>".auth`).
    static func block(_ c: HostCredentials, path: [String]) -> [String] {
        var lines = [
            "\(ContainerdPrerequisites.credentialsMarker) \(contactedHost(c.host)) (managed: replaced and removed with the desired state; this file is kept mode 0600)",
            "[" + TOMLLayout.keyText(path) + "]",
        ]
        for (key, value) in fields(c) { lines.append("  \(key) = \(TOML.string(value))") }
        return lines
    }

    static func plan(
        _ credentials: [HostCredentials], files: [ContainerdConfigFiles.File], configsKey: [String], containerdMajor: Int,
        fixTarget: ContainerdConfigFiles.File?, configFile: String, root: HostRoot, checkModes: Bool
    ) -> Plan {
        var plan = Plan()
        var edit = Edit(file: fixTarget)
        let targetPath = fixTarget?.hostPath ?? configFile
        let shownTarget = root.path(targetPath)
        var wanted = Set<String>()
        for c in credentials {
            let host = contactedHost(c.host)
            guard !wanted.contains(host) else { continue }
            wanted.insert(host)
            let path = configsKey + [host, "auth"]
            // The value containerd reads: on 1.x from the file owning the plugin (the target);
            // on 2.x from the last file that sets it.
            let owner = containerdMajor < 2 ? fixTarget.flatMap { value($0.table, path) != nil ? $0 : nil } : files.last { value($0.table, path) != nil }
            let line = owner?.layout.table(path).map { $0.headerLine + 1 } ?? owner?.layout.key(path).map { $0.firstLine + 1 }
            if let owner, owner.hostPath != targetPath, !isOurs(owner, path) {
                plan.checks.append(.init(
                    name: "registry_credentials", status: .warning,
                    message: "credentials for \(host) are set in \(root.path(owner.hostPath)), which containerd reads after \(shownTarget); that file is left alone, so its credentials are the ones used",
                    file: root.path(owner.hostPath), line: line))
                continue
            }
            let existing = owner.flatMap { value($0.table, path)?.table }
            let current: [(String, String)] = ["username", "password", "auth", "identitytoken"].compactMap { key in
                existing?[key]?.string.map { (key, $0) }
            }
            let desired = fields(c)
            let same = existing != nil && current.count == desired.count && zip(current, desired).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            let ours = owner.map { isOurs($0, path) } ?? false
            if same && ours {
                plan.checks.append(.init(name: "registry_credentials", status: .ok, message: "credentials for \(host) are in place (values not shown)", file: shownTarget, line: line))
                continue
            }
            plan.checks.append(.init(
                name: "registry_credentials", status: existing == nil ? .missing : .wrong,
                message: existing == nil
                    ? "credentials for \(host) (from \(c.location)) are not in containerd's configuration; the fix writes registry.configs.\"\(host)\".auth into \(shownTarget) (mode 0600) and restarts containerd"
                    : "credentials for \(host) in containerd's configuration differ from the desired state (values not shown); the fix replaces them",
                file: shownTarget, line: line))
            if existing != nil { edit.remove.append(host) }
            edit.append.append(block(c, path: path))
            edit.changes.append("credentials for \(host)")
        }
        // Tables the agent wrote for hosts the desired state no longer has credentials for.
        if let fixTarget, let configs = value(fixTarget.table, configsKey)?.table {
            for host in configs.keys.sorted() where !wanted.contains(host) && isOurs(fixTarget, configsKey + [host, "auth"]) {
                plan.checks.append(.init(
                    name: "registry_credentials", status: .wrong,
                    message: "credentials for \(host) were written by mirror-agent and are no longer in the desired state; the fix removes them",
                    file: shownTarget, line: fixTarget.layout.table(configsKey + [host, "auth"]).map { $0.headerLine + 1 }))
                edit.remove.append(host)
                edit.changes.append("removed credentials for \(host)")
            }
        }
        // A file holding credentials is readable by root alone.
        let holds = plan.checks.contains { $0.name == "registry_credentials" && $0.status != .warning }
        if checkModes, holds, edit.append.isEmpty, edit.remove.isEmpty, let fixTarget, let mode = fixTarget.mode, mode & 0o077 != 0 {
            plan.checks.append(.init(
                name: "registry_credentials_mode", status: .wrong,
                message: "\(shownTarget) holds registry credentials and is mode \(String(mode, radix: 8)); the fix makes it 0600",
                file: shownTarget, line: nil))
        }
        if !edit.remove.isEmpty || !edit.append.isEmpty || plan.checks.contains(where: { $0.name == "registry_credentials_mode" }) {
            plan.edits.append(edit)
        }
        return plan
    }
}
