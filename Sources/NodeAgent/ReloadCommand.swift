import ArgumentParser
import DesiredState
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// `mirror-agent reload`: what `systemctl reload mirror-agent` runs (ExecReload=). Checks
/// agent.yaml and the desired state first and refuses (exit 2, the daemon not signalled) when
/// either is invalid; otherwise sends the daemon SIGHUP carrying a request number (sigqueue) and
/// waits until the daemon's status file echoes that number with the outcome. Exit 0 when the
/// daemon applied the reload, 2 when it refused the new settings (the previous ones stay in
/// force), 1 when there is no daemon or it did not answer in time.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Check agent.yaml and the desired state, then have the running daemon re-read them and wait for its answer.",
        discussion: "Run by systemctl reload mirror-agent (ExecReload=). The daemon's PID comes from $MAINPID (set by systemd), --pid, or the status file. Exit 0 reloaded, 2 invalid input (nothing reloaded: the previous settings stay in force), 1 no daemon or no answer."
    )

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "The daemon's PID (default: $MAINPID, else the status file's).")
    var pid: Int32?
    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the daemon's answer.", valueName: "SECONDS"))
    var timeout: Double = 80

    func run() throws {
        let root = common.hostRoot
        let (settings, settingsDiagnostics) = AgentSettings.load(root: root)
        var diagnostics = settingsDiagnostics
        if !settingsDiagnostics.hasErrors {
            diagnostics.append(contentsOf: DesiredStateLoader.load(root: root, settings: settings).diagnostics)
        }
        if diagnostics.hasErrors {
            for d in diagnostics.sorted where d.severity == .error { FileHandleOutput.standardError(d.description) }
            let what = settingsDiagnostics.hasErrors ? "agent.yaml is invalid" : "the desired state is invalid"
            FileHandleOutput.standardError("not reloaded: \(what); the daemon keeps its previous settings")
            throw ExitCode(ExitStatus.invalidInput)
        }

        let statusPath = settings.status.file
        guard let target = daemonPID(root: root, statusPath: statusPath) else {
            FileHandleOutput.standardError("not reloaded: no running mirror-agent daemon (no $MAINPID, no live pid in \(root.path(statusPath)))")
            throw ExitCode(ExitStatus.failedToAct)
        }
        let request = Int32.random(in: 1...Int32.max)
        guard sigqueue(target, SIGHUP, sigval(sival_int: request)) == 0 else {
            FileHandleOutput.standardError("not reloaded: cannot signal pid \(target): \(String(cString: strerror(errno)))")
            throw ExitCode(ExitStatus.failedToAct)
        }

        // The daemon answers by rewriting its status file; wait (bounded) for our request number.
        let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, timeout) * 1000))
        while ContinuousClock.now < deadline {
            if case .success(let report) = StatusReport.read(from: statusPath, root: root), let reload = report.reload, reload.request == request {
                if reload.result == "ok" {
                    print("reloaded: \(report.statusLine())")
                    return
                }
                FileHandleOutput.standardError("reload refused by the daemon: \(reload.error ?? "invalid settings"); the previous settings stay in force")
                throw ExitCode(ExitStatus.invalidInput)
            }
            if kill(target, 0) != 0 && errno == ESRCH {
                FileHandleOutput.standardError("not reloaded: the daemon (pid \(target)) exited")
                throw ExitCode(ExitStatus.failedToAct)
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
        }
        FileHandleOutput.standardError("the daemon (pid \(target)) did not confirm the reload within \(timeout)s; see journalctl -u mirror-agent")
        throw ExitCode(ExitStatus.failedToAct)
    }

    /// $MAINPID under systemd, --pid, else the status file's pid if that process is a mirror-agent.
    private func daemonPID(root: HostRoot, statusPath: String) -> pid_t? {
        if let pid { return pid > 0 ? pid : nil }
        if let text = getenv("MAINPID").map({ String(cString: $0) }), let value = Int32(text), value > 0 { return value }
        guard case .success(let report) = StatusReport.read(from: statusPath, root: root), report.pid > 0 else { return nil }
        // The status file may outlive its daemon, and its pid be reused: check what runs there.
        guard let comm = try? String(contentsOfFile: "/proc/\(report.pid)/comm", encoding: .utf8),
            comm.trimmingWhitespace(newlines: true) == "mirror-agent"
        else { return nil }
        return report.pid
    }
}
