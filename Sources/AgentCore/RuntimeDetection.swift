import DesiredState
import Foundation
import RuntimeWriters

/// Facts about the installed runtimes that only running them can tell.
public enum RuntimeDetection {
    /// containerd's version from `containerd --version` under the root, when it can be run.
    public static func containerdVersion(root: HostRoot) -> String? {
        for candidate in ["/usr/bin/containerd", "/usr/local/bin/containerd"] {
            let path = root.path(candidate)
            guard FileManager.default.isExecutableFile(atPath: path) else { continue }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = ["--version"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1" or "... v2.1.3 <commit>"
            let words = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
            if let word = words.first(where: { $0.drop(while: { $0 == "v" }).first?.isNumber == true && $0.contains(".") }) {
                return String(word)
            }
        }
        return nil
    }

    /// `containerd --config <candidate> config dump` on this host, when containerd is installed:
    /// the dump (stdout, TOML) and containerd's log lines (stderr) apart.
    public static func containerdConfigDump(candidate: String) -> (succeeded: Bool, output: String, errors: String)? {
        let binary = ["/usr/bin/containerd", "/usr/local/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else { return nil }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard (try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil else { return nil }
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("config.toml")
        let errorsFile = directory.appendingPathComponent("stderr")
        guard (try? candidate.write(to: file, atomically: true, encoding: .utf8)) != nil,
            FileManager.default.createFile(atPath: errorsFile.path, contents: nil),
            let errorsHandle = try? FileHandle(forWritingTo: errorsFile)
        else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--config", file.path, "config", "dump"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = errorsHandle
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? errorsHandle.close()
        let errors = (try? String(contentsOf: errorsFile, encoding: .utf8)) ?? ""
        return (process.terminationStatus == 0, String(decoding: data, as: UTF8.self), errors)
    }

    /// CRI-O's (major, minor) from `crio --version`, only for this host's root and bounded to
    /// five seconds: nil when it cannot be told (no binary, a hang, unparsable output).
    public static func crioVersion(root: HostRoot) -> (major: Int, minor: Int)? {
        guard root == .system else { return nil }
        guard let binary = ["/usr/bin/crio", "/usr/local/bin/crio"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return nil
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return CRIOSettings.version(fromOutput: String(decoding: data, as: UTF8.self))
    }
}
