import ArgumentParser
import DesiredState
import Diagnostics

#if canImport(Glibc)
import Glibc
#endif

/// The exit codes fleet tooling scripts against.
enum ExitStatus {
    static let ok: Int32 = 0
    static let failedToAct: Int32 = 1
    static let invalidInput: Int32 = 2
    static let needsFix: Int32 = 3
}

/// `mirror-agent`: keeps a host's container runtimes pointed at the right registry mirrors.
@main
struct MirrorAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror-agent",
        abstract: "Keeps containerd and CRI-O pointed at the right registry mirrors.",
        discussion: """
            Desired state is read from /etc/mirror-agent/mirrors.yaml and /etc/mirror-agent/mirrors.d/*.yaml \
            (MirrorSet, k3s registries.yaml, ImageDigestMirrorSet, ImageTagMirrorSet, ImageContentSourcePolicy, \
            or a ConfigMap holding them). Exit codes: 0 ok, 1 failure to act, 2 invalid input (nothing written), \
            3 the runtime needs a fix.
            """,
        version: AgentVersion.string,
        subcommands: [RunCommand.self, ApplyCommand.self, ValidateCommand.self, CheckCommand.self, StatusCommand.self, ProbeCommand.self, ReloadCommand.self, ExplainCommand.self]
    )

    /// Parses and runs, mapping every outcome onto the exit-code contract: a command-line usage
    /// error is invalid input (2), not ArgumentParser's own 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            FileHandleOutput.standardError(fullMessage(for: error))
            Glibc.exit(code == .validationFailure ? ExitStatus.invalidInput : code.rawValue)
        }
    }
}

enum AgentVersion {
    static let string = "0.2.0"
}

/// Options every command shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "The host root every path is under.")
    var root: String = "/"

    var hostRoot: HostRoot { HostRoot(root) }
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        write(Array(line.utf8), to: 2)
    }

    /// All of `bytes` to `fd`, through short writes and EINTR (a pipe to a slow reader); stops
    /// at any other error (a closed pipe: nobody reads any more).
    static func write(_ bytes: [UInt8], to fd: Int32) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
