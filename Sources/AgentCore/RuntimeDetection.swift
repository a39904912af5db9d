import DesiredState
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RuntimeWriters
#if canImport(Glibc)
import Glibc
#endif

/// Facts about the installed runtimes that only running them can tell.
public enum RuntimeDetection {
    /// containerd's version from `containerd --version` under the root, when it can be run (within
    /// five seconds: a wedged binary must not stall a pass).
    public static func containerdVersion(root: HostRoot) -> String? {
        for candidate in ["/usr/bin/containerd", "/usr/local/bin/containerd"] {
            let path = root.path(candidate)
            guard FileManager.default.isExecutableFile(atPath: path) else { continue }
            guard let run = Subprocess.run(path, ["--version"], timeout: .seconds(5)), !run.timedOut else { continue }
            let data = run.standardOutput
            // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1" or "... v2.1.3 <commit>"
            let words = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
            if let word = words.first(where: { $0.drop(while: { $0 == "v" }).first?.isNumber == true && $0.contains(".") }) {
                return String(word)
            }
        }
        return nil
    }

    /// `containerd --config <candidate> config dump` on this host, when containerd is installed:
    /// the dump (stdout, TOML) and containerd's log lines (stderr) apart; nil when it cannot run or
    /// takes more than 30 seconds.
    public static func containerdConfigDump(candidate: String) -> (succeeded: Bool, output: String, errors: String)? {
        guard containerdBinary != nil else { return nil }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard (try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil else { return nil }
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("config.toml")
        guard (try? candidate.write(to: file, atomically: true, encoding: .utf8)) != nil else { return nil }
        return containerdConfigDump(file: file.path)
    }

    /// `containerd --config FILE config dump` on this host: nil when containerd is not installed,
    /// cannot run or takes more than 30 seconds.
    public static func containerdConfigDump(file: String) -> (succeeded: Bool, output: String, errors: String)? {
        guard let binary = containerdBinary,
            let run = Subprocess.run(binary, ["--config", file, "config", "dump"], captureStandardError: true, timeout: .seconds(30)), !run.timedOut
        else { return nil }
        return (run.succeeded, String(decoding: run.standardOutput, as: UTF8.self), String(decoding: run.standardError, as: UTF8.self))
    }

    /// This host's containerd binary (where Debian and upstream's tarball put it).
    static var containerdBinary: String? {
        ["/usr/bin/containerd", "/usr/local/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// CRI-O's (major, minor) from `crio --version`, only for this host's root and bounded to
    /// five seconds: nil when it cannot be told (no binary, a hang, unparsable output).
    public static func crioVersion(root: HostRoot) -> (major: Int, minor: Int)? {
        guard root == .system else { return nil }
        guard let binary = ["/usr/bin/crio", "/usr/local/bin/crio"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        guard let run = Subprocess.run(binary, ["--version"], timeout: .seconds(5)), !run.timedOut else { return nil }
        return CRIOSettings.version(fromOutput: String(decoding: run.standardOutput, as: UTF8.self))
    }
}
