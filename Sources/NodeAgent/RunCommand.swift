import ArgumentParser
import DesiredState
import Diagnostics
import Logging

/// `mirror-agent run`: the daemon systemd starts (Type=notify).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: reconcile now and on every change of the desired state.",
        discussion: "Under systemd it logs to the journal and reports through sd_notify; elsewhere it logs to stderr. SIGHUP re-reads agent.yaml; SIGTERM stops."
    )

    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Log debug messages too.")
    var verbose = false

    func run() throws {
        JournalLogHandler.bootstrap(level: verbose ? .debug : .info)
        let logger = Logger(label: "mirror-agent")
        let root = common.hostRoot
        var (settings, diagnostics) = AgentSettings.load(root: root)
        var settingsProblem: (full: String, public: String)?
        if diagnostics.hasErrors {
            // The daemon never exits for bad input, and never acts on settings it could not
            // read: it runs report-only (nothing written, nothing restarted) and says so, until
            // a valid agent.yaml is reloaded. Defaults would undo explicit choices such as
            // fixConfig: false or restart.policy: never.
            for d in diagnostics.errors { logger.error("\(d.description)", metadata: ["file": "\(d.location?.file ?? "")"]) }
            settingsProblem = Daemon.settingsProblem(diagnostics.errors)
            logger.error("agent.yaml is invalid; report-only (nothing is written or restarted) until it is fixed and reloaded")
            settings = AgentSettings()
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(root: root, settings: settings, logger: logger, settingsProblem: settingsProblem)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(ExitStatus.failedToAct)
        }
        logger.info("mirror-agent \(AgentVersion.string) started (root \(root))")
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}
