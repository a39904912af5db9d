import ArgumentParser
import DesiredState
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
        if diagnostics.hasErrors {
            // The daemon never exits for bad input: it runs on defaults and says so.
            for d in diagnostics.errors { logger.error("\(d.description)") }
            logger.error("agent.yaml is invalid; running with default settings until it is fixed and reloaded")
            settings = AgentSettings()
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(root: root, settings: settings, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(ExitStatus.failedToAct)
        }
        logger.info("mirror-agent \(AgentVersion.string) started (root \(root))")
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}
