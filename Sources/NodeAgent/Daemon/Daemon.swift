import CLinuxShim
import DesiredState
import Diagnostics
import Foundation
import HealthProbe
import Logging
import RuntimeActions
import RuntimeWriters

#if canImport(Glibc)
import Glibc
#endif

/// `mirror-agent run`: reconcile at start, then on every change, in one poll loop over inotify,
/// signals and timers. Nothing polls files: the loop sleeps until the kernel has something.
///
/// - Desired-state changes are debounced (`daemon.debounce`) into one pass.
/// - Invalid desired state is not applied: the files in force stay, the error goes to the journal
///   and to STATUS=, and the next valid change is applied (last-known-good).
/// - A hand edit or removal of a managed file is seen through its directory and repaired by the
///   next pass.
/// - Restarts and reloads wait `daemon.restartDelay` after the last change that needs them (one
///   restart for a burst) and containerd restarts are at most one per `daemon.minRestartInterval`.
/// - SIGHUP re-reads agent.yaml (RELOADING=1 ... READY=1); SIGTERM stops (STOPPING=1).
final class Daemon {
    let root: HostRoot
    var settings: AgentSettings
    let logger: Logger
    let notifier = SystemdNotifier()
    let watcher: FileWatcher

    var generation = 0
    var lastGoodFiles: [String] = []
    var status: StatusReport?
    var pendingRestart: [Reconciliation.ConfigOriginal]?
    /// Why containerd's restart is pending ("config.toml fixed ...", "restart pending: containerd
    /// started before config.toml changed", ...), for the journal and status.
    var pendingRestartReason: String?
    var pendingReload = false
    /// agent.yaml was invalid when the daemon started: it runs report-only (passes as dry runs,
    /// no config.toml patch, no restart or reload) until a valid agent.yaml is reloaded, rather
    /// than on defaults that may undo an admin's explicit choices (fail closed).
    var settingsProblem: String?
    var runtimeHistory: [String: (RuntimeActionReport, Date)] = [:]
    var outputDirectories: [String] = []
    /// Directories of the TLS files the certs.d copies come from (paths on this machine): a
    /// change there (a rotated CA or certificate) re-renders the copies.
    var tlsSourceDirectories: [String] = []
    /// containerd's config.toml and its imports (paths on this machine): a change by anyone is
    /// checked by a pass (fixed where needed, and a restart planned if containerd runs older).
    var containerdConfigFiles: Set<String> = []
    /// Directories holding the secret files credentials are read from (paths on this machine):
    /// any event in one (a file rewritten, renamed over, a Secret mount's `..data` swapped) starts
    /// a pass, which reads the files again. Kept from the last valid pass while the input is
    /// invalid, so fixing a secret file is noticed too.
    var secretDirectories: Set<String> = []

    // Mirror health.
    var prober: MirrorProber?
    var tracker = HealthTracker()
    var lastModel = MirrorModel()
    var probeRound = 0
    var probeInFlight: Int?
    var probeTask: Task<Void, Never>?
    /// Full rounds every interval; a failing endpoint rechecked on its own until it is decided.
    var probeSchedule: ProbeSchedule
    /// The endpoints the next round probes (nil: all), and those of the round in flight.
    var nextRecheck: [String]?
    var recheckInFlight: [String]?
    /// Node errors the probes found, logged once each until they go away.
    var loggedNodeErrors: [String] = []
    let probeMailbox = ProbeMailbox()
    var metrics = MetricsTextfile()

    // Event sources.
    let signals: Int32
    let probeTimer: Int32
    let probeDone: (read: Int32, write: Int32)
    let debounceTimer: Int32
    let restartTimer: Int32
    let watchdogTimer: Int32
    let statusTimer: Int32
    var desiredChanged = false
    var outputChanged: Set<String> = []
    /// When a pass follows file changes: at once for a complete change, one more per burst.
    var passTiming: PassTiming
    let clockOrigin = ContinuousClock.now
    var monotonicNow: Duration { ContinuousClock.now - clockOrigin }
    var tlsSourcesChanged = false
    /// Failing passes in a row (disk full, read-only /etc...): the next try comes after
    /// `retrySchedule.delay(afterFailures:)`, and not sooner. While a retry is due, changes of
    /// managed files wait for it (the retry rewrites them anyway); a desired-state change (new
    /// input) is tried after the debounce.
    var failuresInARow = 0
    var retryDue = false
    let retrySchedule = RetrySchedule()
    /// What the last failing pass could not do, and the warnings of the last pass: logged again
    /// only when they change, so a persistent failure logs one line per retry.
    var lastFailures: [String] = []
    var lastWarnings: Set<String> = []

    init(root: HostRoot, settings: AgentSettings, logger: Logger, settingsProblem: String? = nil) throws(RuntimeError) {
        self.root = root
        self.settings = settings
        self.settingsProblem = settingsProblem
        self.logger = logger
        watcher = try FileWatcher()
        passTiming = PassTiming(window: settings.daemon.debounce)
        probeSchedule = ProbeSchedule(interval: settings.probe.interval, jitter: settings.probe.jitter)
        signals = msa_signalfd_open()
        debounceTimer = msa_timerfd_open()
        restartTimer = msa_timerfd_open()
        watchdogTimer = msa_timerfd_open()
        statusTimer = msa_timerfd_open()
        probeTimer = msa_timerfd_open()
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw RuntimeError("pipe: \(String(cString: strerror(errno)))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        probeDone = (ends[0], ends[1])
        tracker = HealthTracker(failureThreshold: settings.probe.failureThreshold, successThreshold: settings.probe.successThreshold)
        guard signals >= 0, debounceTimer >= 0, restartTimer >= 0, watchdogTimer >= 0, statusTimer >= 0, probeTimer >= 0 else {
            throw RuntimeError("cannot set up signalfd/timerfd: \(String(cString: strerror(errno)))")
        }
    }

    var desiredDirectories: [String] {
        [root.path("/etc/mirror-agent"), root.path(DesiredStateLoader.dropInDirectory)]
    }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    func run() -> Int32 {
        watchEverything()
        resumePendingActions()
        handleFileEvents(ownWrites: reconcile(reason: "start"))
        notifier.ready(status: status?.statusLine() ?? "started")
        armWatchdog()
        _ = msa_timerfd_arm(statusTimer, 30_000_000_000, 30_000_000_000)
        startProbeRound()
        defer { stopProbes() }

        var fds = [watcher.fd, signals, debounceTimer, restartTimer, watchdogTimer, statusTimer, probeTimer, probeDone.read].map {
            pollfd(fd: $0, events: Int16(POLLIN), revents: 0)
        }
        while true {
            for i in fds.indices { fds[i].revents = 0 }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                logger.critical("poll failed: \(String(cString: strerror(errno)))")
                return 1
            }
            if fds[1].revents != 0 {
                var request: Int32 = 0
                let signal = msa_signalfd_read_value(signals, &request)
                if signal == SIGTERM || signal == SIGINT {
                    notifier.stopping()
                    logger.info("stopping on signal \(signal)")
                    return 0
                }
                if signal == SIGHUP { reload(request: request) }
            }
            if fds[0].revents != 0 { handleFileEvents() }
            if fds[2].revents != 0, msa_timerfd_read(debounceTimer) > 0 { debounced() }
            if fds[3].revents != 0, msa_timerfd_read(restartTimer) > 0 { performPendingActions() }
            if fds[4].revents != 0, msa_timerfd_read(watchdogTimer) > 0 { notifier.watchdog() }
            if fds[5].revents != 0, msa_timerfd_read(statusTimer) > 0, let status { notifier.status(status.statusLine()) }
            if fds[6].revents != 0, msa_timerfd_read(probeTimer) > 0 { startProbeRound() }
            if fds[7].revents != 0 { probeRoundFinished() }
        }
    }

    // MARK: - Mirror health

    /// Starts a probe round in a task owned by the daemon; its end is signalled through a pipe
    /// so the results are handled here, in the loop.
    private func startProbeRound() {
        guard settings.probe.enabled, probeInFlight == nil else { return }
        var targets = ProbeTargets.from(lastModel)
        if let ids = nextRecheck {
            let rechecked = targets.filter { ids.contains($0.id) }
            if !rechecked.isEmpty { targets = rechecked }
            recheckInFlight = rechecked.isEmpty ? nil : ids
            nextRecheck = nil
        } else {
            recheckInFlight = nil
        }
        guard !targets.isEmpty else {
            scheduleNextProbe()
            return
        }
        if prober == nil { prober = MirrorProber(settings: probeSettings(settings.probe), root: root) }
        let prober = prober!
        probeRound += 1
        let round = probeRound
        probeInFlight = round
        let mailbox = probeMailbox
        let wake = probeDone.write
        // Normal priority: a task made on the main thread would be user-initiated (nice -2).
        probeTask = Task(priority: .medium) {
            let results = await prober.probe(targets)
            mailbox.put(round: round, results)
            var byte: UInt8 = 1
            _ = write(wake, &byte, 1)
        }
    }

    private func probeRoundFinished() {
        var byte: UInt8 = 0
        while read(probeDone.read, &byte, 1) > 0 {}
        probeInFlight = nil
        probeTask = nil
        let wasFull = recheckInFlight == nil
        recheckInFlight = nil
        guard let (round, results) = probeMailbox.take(), round == probeRound else { return scheduleNextProbe() }
        let downBefore = tracker.down
        for transition in tracker.record(results, forgetOthers: wasFull) {
            let metadata: Logger.Metadata = ["registry": "\(transition.registries.first ?? "")", "endpoint": "\(transition.id)"]
            switch transition.to {
            case .down, .demoted:
                logger.warning(
                    "mirror \(transition.id) is down (\(transition.reason ?? "no answer")) after \(settings.probe.failureThreshold) failed probes; serves \(transition.registries.joined(separator: ", "))",
                    metadata: metadata)
            case .up:
                logger.notice("mirror \(transition.id) is up again; serves \(transition.registries.joined(separator: ", "))", metadata: metadata)
            case .failing:
                logger.notice(
                    "mirror \(transition.id) is failing (1/\(settings.probe.failureThreshold)): \(transition.reason ?? "no answer"); serves \(transition.registries.joined(separator: ", "))",
                    metadata: metadata)
            case .unknown:
                break
            }
        }
        tracker.expect(ProbeTargets.from(lastModel))
        let nodeErrors = StatusReport.nodeErrors(tracker.sorted)
        for error in nodeErrors where !loggedNodeErrors.contains(error) {
            let endpoints = tracker.sorted.filter { $0.last?.local == true && $0.last?.error == error }.map(\.id)
            logger.error("\(error); not held against \(endpoints.joined(separator: ", ")), which stay\(endpoints.count == 1 ? "s" : "") unknown until it is fixed")
        }
        if !loggedNodeErrors.isEmpty && nodeErrors.isEmpty { logger.notice("the probes' node configuration errors are gone") }
        loggedNodeErrors = nodeErrors
        if settings.probe.onUnhealthy == .demote && tracker.down != downBefore {
            handleFileEvents(ownWrites: reconcile(reason: "mirror health changed"))
        } else if var report = status {
            report.probes = tracker.sorted
            publish(report)
        }
        scheduleNextProbe(afterFull: wasFull)
    }

    private func scheduleNextProbe(afterFull: Bool = true) {
        guard settings.probe.enabled else { return }
        let now = monotonicNow
        let due: Duration
        switch probeSchedule.next(afterFull: afterFull, health: tracker.sorted, now: now, random: Double.random(in: 0...1)) {
        case .full(let at):
            nextRecheck = nil
            due = at
        case .recheck(let ids, let at):
            nextRecheck = ids
            due = at
        }
        _ = msa_timerfd_arm(probeTimer, max(1, nanoseconds(due - now)), 0)
    }

    private func stopProbes() {
        probeTask?.cancel()
        if let prober {
            // async-http-client wants an orderly shutdown before it goes away.
            runBlocking { await prober.shutdown() }
        }
        prober = nil
    }

    // MARK: - Events

    private func watchEverything() {
        // /etc is watched for /etc/mirror-agent itself appearing or being replaced.
        let configDirectories = Set(containerdConfigFiles.map { String($0[..<($0.lastIndex(of: "/") ?? $0.startIndex)]) })
        let secrets = secretDirectories.subtracting(outputDirectories).subtracting(desiredDirectories).subtracting(configDirectories)
        let tls = Set(tlsSourceDirectories).subtracting(outputDirectories).subtracting(desiredDirectories).subtracting(configDirectories).subtracting(secrets)
        watcher.watch(desiredDirectories + outputDirectories + configDirectories.subtracting(outputDirectories).sorted() + secrets.sorted() + tls.sorted())
    }

    /// Sorts pending file events into desired-state changes and changes to managed files.
    /// `ownWrites` are paths this process just wrote: their events are its own, not drift (the
    /// kernel queues them during the writes, so they are all pending when a pass returns).
    private func handleFileEvents(ownWrites: [String] = []) {
        let desired = desiredDirectories
        var seen: PassTiming.Change?
        for event in watcher.read() {
            if event.name.hasPrefix(AtomicWriterTemporaryPrefix) { continue }
            let path = event.name.isEmpty ? event.directory : event.directory + "/" + event.name
            if ownWrites.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) { continue }
            var read = true
            if desired.contains(event.directory) {
                if path == root.path(AgentSettings.path) {
                    logger.notice("agent.yaml changed; run systemctl reload mirror-agent to apply it", metadata: ["file": "\(path)"])
                    continue
                } else {
                    desiredChanged = true
                    read = event.name.isEmpty || DesiredStateLoader.isDesiredStateName(event.name) || path == root.path(DesiredStateLoader.mainFile)
                }
            } else if secretDirectories.contains(event.directory) || secretDirectories.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                // A secret file rotated (or its directory replaced): read the credentials again.
                desiredChanged = true
            } else if desired.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                // A desired-state directory itself appeared, went away or was replaced.
                desiredChanged = true
            } else if containerdConfigFiles.contains(path) {
                outputChanged.insert(path)
            } else if outputDirectories.contains(event.directory) || outputDirectories.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                outputChanged.insert(path)
            } else if tlsSourceDirectories.contains(event.directory) || tlsSourceDirectories.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                tlsSourcesChanged = true
            } else {
                continue
            }
            if seen != .complete { seen = ChangeKind.of(mask: event.mask, read: read) }
        }
        // New input is tried at once when complete (else after the debounce), one more pass per
        // burst; changes of managed files wait for a retry that is due (it rewrites them anyway),
        // so a failing pass is not re-run per event.
        if let seen, desiredChanged || tlsSourcesChanged || (!outputChanged.isEmpty && !retryDue) {
            let now = monotonicNow
            let delay: Duration
            switch passTiming.changed(seen, at: now) {
            case .now: delay = .zero
            case .at(let due): delay = due - now
            }
            // 1 ns: a zero would disarm the timer; the loop runs the pass on its next turn.
            _ = msa_timerfd_arm(debounceTimer, max(1, nanoseconds(delay)), 0)
        }
    }

    private func debounced() {
        let drift = outputChanged
        let reason = desiredChanged ? "desired state changed" : retryDue ? "retry" : tlsSourcesChanged && outputChanged.isEmpty ? "TLS files changed" : "managed files changed"
        tlsSourcesChanged = false
        desiredChanged = false
        outputChanged = []
        retryDue = false
        let changed = reconcile(reason: reason)
        handleFileEvents(ownWrites: changed)
        if !drift.isEmpty && !changed.isEmpty {
            for path in changed {
                logger.warning("repaired drift: \(path) was changed by hand and is rewritten", metadata: ["file": "\(path)"])
            }
        }
    }

    /// `request` is the number `mirror-agent reload` sent with SIGHUP; the status file echoes it
    /// with the outcome, which is how that command (systemd's ExecReload=) knows the result.
    private func reload(request: Int32 = 0) {
        notifier.reloading(status: "reloading agent.yaml")
        let (fresh, diagnostics) = AgentSettings.load(root: root)
        var refused = diagnostics.errors.first.map { "\($0.description)\(diagnostics.errors.count > 1 ? " (+\(diagnostics.errors.count - 1) more)" : "")" }
        if diagnostics.hasErrors {
            for d in diagnostics.errors { logger.error("\(d.description)", metadata: ["file": "\(d.location?.file ?? "")"]) }
            if settingsProblem != nil {
                settingsProblem = Self.settingsProblem(diagnostics.errors)
                logger.error("agent.yaml is still invalid; staying report-only")
            } else {
                logger.error("agent.yaml is invalid; the previous settings stay in force")
            }
        } else {
            if settingsProblem != nil {
                logger.notice("agent.yaml is valid again; leaving report-only mode")
                settingsProblem = nil
                resumePendingActions()
            }
            let probeChanged = fresh.probe != settings.probe
            settings = fresh
            passTiming.window = settings.daemon.debounce
            logger.info("agent.yaml re-read")
            armWatchdog()
            if probeChanged {
                // New probe settings: a new client and fresh hysteresis; the round in flight is dropped.
                stopProbes()
                probeInFlight = nil
                probeRound += 1
                tracker = HealthTracker(failureThreshold: settings.probe.failureThreshold, successThreshold: settings.probe.successThreshold)
                probeSchedule = ProbeSchedule(interval: settings.probe.interval, jitter: settings.probe.jitter)
                nextRecheck = nil
                recheckInFlight = nil
                _ = msa_timerfd_arm(probeTimer, settings.probe.enabled ? 1_000_000 : 0, 0)
            }
        }
        handleFileEvents(ownWrites: reconcile(reason: "reload"))
        notifier.ready(status: status?.statusLine() ?? "reloaded")
        if status?.result == "invalid" { refused = refused ?? status?.error }
        if var report = status {
            report.reload = .init(request: request, time: Date(), result: refused == nil ? "ok" : "refused", error: refused)
            publish(report)
        }
    }

    // MARK: - Reconcile

    /// One pass; returns the paths it changed.
    @discardableResult
    private func reconcile(reason: String) -> [String] {
        generation += 1
        defer { passTiming.passEnded(at: monotonicNow) }
        let down = settings.probe.onUnhealthy == .demote ? tracker.down : []
        let reconciliation = Reconciliation(root: root, settings: settings, dryRun: settingsProblem != nil, down: down)
        let result = reconciliation.run()
        metrics.lastReconcile = Date()
        let now = Date()
        var report = StatusReport(
            pid: getpid(), generation: generation, result: "ok", lastReconcile: now, lastSuccess: status?.lastSuccess, error: nil,
            desiredFiles: result.files, registries: result.model.registries.count, mirrors: result.model.mirrorCount,
            managedFiles: status?.managedFiles ?? [], lastChanged: [], warnings: [], runtimes: [])
        report.reload = status?.reload

        if result.invalid {
            let errors = result.diagnostics.errors
            for error in errors {
                logger.error("\(error.description)", metadata: ["file": "\(error.location?.file ?? "")"])
            }
            logger.error("desired state is invalid (\(errors.count) error\(errors.count == 1 ? "" : "s")); the last good configuration stays in force")
            report.result = "invalid"
            report.error = errors.first.map { $0.description + (errors.count > 1 ? " (+\(errors.count - 1) more)" : "") }
            if let previous = status {
                report.registries = previous.registries
                report.mirrors = previous.mirrors
                report.desiredFiles = previous.desiredFiles
            }
            report.runtimes = status?.runtimes ?? []
            metrics.reconcileTotal["invalid", default: 0] += 1
            publish(report)
            return []
        }
        lastModel = result.model
        if settings.probe.enabled { tracker.expect(ProbeTargets.from(result.model)) }
        tracker.markDemoted(result.demoted)

        let changes = result.outcome.changes + result.configChanges
        for change in changes {
            var metadata: Logger.Metadata = ["file": "\(root.path(change.path))", "runtime": "\(change.runtime.rawValue)"]
            if change.path.hasSuffix("/hosts.toml"), let directory = change.path.split(separator: "/").dropLast().last {
                metadata["registry"] = "\(ContainerdHostsRenderer.host(forDirectory: String(directory)))"
            }
            logger.info("\(settingsProblem == nil ? "" : "report-only, would have ")\(change.kind.rawValue) \(root.path(change.path))", metadata: metadata)
        }
        // Warnings are logged when they first appear, not again on every pass.
        let warnings = result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings
        for warning in warnings where !lastWarnings.contains(warning.description) {
            logger.warning("\(warning.description)", metadata: ["file": "\(warning.location?.file ?? "")"])
        }
        lastWarnings = Set(warnings.map(\.description))
        for note in result.notes where !changes.isEmpty { logger.info("\(note)") }
        let failures = result.outcome.failures
        let sameFailures = !failures.isEmpty && failures == lastFailures
        // A failure no retry can mend (configuration), said once; the rest is retried.
        let configurationErrors = failures.compactMap { reconciliation.crioConfigurationError($0) }
        let retryable = failures.filter { reconciliation.crioConfigurationError($0) == nil }
        if !sameFailures {
            for (runtime, problems) in result.runtimeFailures.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                for problem in problems {
                    logger.error("\(reconciliation.crioConfigurationError(problem) ?? problem)", metadata: ["runtime": "\(runtime.rawValue)"])
                }
            }
            for failure in failures where !result.runtimeFailures.values.contains(where: { $0.contains(failure) }) { logger.error("\(failure)") }
        }
        lastFailures = failures
        for registry in result.model.registries where generation == 1 {
            logger.info(
                "\(registry.source): \(registry.mirrors.map(\.displayURL).joined(separator: ", "))\(registry.sourcePolicy == .neverContactSource ? " (never contacts the source)" : "")",
                metadata: ["registry": "\(registry.source)"])
        }

        // Runtime actions wait for the burst to end.
        for action in result.pending {
            switch action {
            case .restartContainerd(let originals):
                if pendingRestart == nil {
                    pendingRestart = originals
                    pendingRestartReason = reconciliation.loadPending().0.containerdRestart?.reason ?? "config.toml changed"
                }
            case .reloadCRIO:
                pendingReload = true
            }
        }
        // Whoever changed config.toml (an admin, a package upgrade, an earlier run of the agent
        // whose restart was lost), containerd running with an older one needs a restart too.
        if pendingRestart == nil, let change = reconciliation.staleContainerd() {
            let message = StaleRuntime.message(runtime: "containerd", file: change.path)
            logger.notice("\(message) (\(change.path) changed after containerd's main process started)", metadata: ["runtime": "containerd", "file": "\(change.path)"])
            pendingRestart = []
            pendingRestartReason = message
            for problem in reconciliation.updatePending({ $0.addContainerdRestart(.init(reason: message, decidedAt: Journal.realtimeMicroseconds())) }) {
                logger.error("\(problem)")
            }
        }
        if pendingRestart != nil || pendingReload {
            _ = msa_timerfd_arm(restartTimer, nanoseconds(settings.daemon.restartDelay), 0)
        }

        report.result = failures.isEmpty ? "ok" : "failed"
        if let settingsProblem {
            // Report-only: what a pass would change is said, nothing is written.
            report.result = "invalid"
            report.error = "\(settingsProblem); report-only: nothing is written or restarted until a valid agent.yaml is reloaded"
            if generation == 1 || !changes.isEmpty { logger.error("\(report.error!)\(changes.isEmpty ? "" : " (\(changes.count) file\(changes.count == 1 ? "" : "s") would change)")") }
            metrics.reconcileTotal["invalid", default: 0] += 1
            report.lastChanged = []
            report.managedFiles = result.plan.files.map { root.path($0.path) }
            report.warnings = (result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings).map(\.description)
            report.runtimes = runtimeStatus(result)
            publish(report)
            return []
        }
        metrics.reconcileTotal[report.result, default: 0] += 1
        if report.result == "failed" && retryable.isEmpty {
            // Only configuration errors: logged above when they first appeared; nothing to
            // retry until something changes (an event starts the next pass).
            failuresInARow = 0
            retryDue = false
        } else if report.result == "failed" {
            // Retry with backoff: nothing else may change to wake us up. One line per retry.
            failuresInARow += 1
            let delay = retrySchedule.delay(afterFailures: failuresInARow)
            retryDue = true
            let inForce = result.plan.runtimes.filter { result.runtimeFailures[$0] == nil }.map(\.rawValue)
            let kept = inForce.isEmpty || result.runtimeFailures.isEmpty ? "" : " (\(inForce.joined(separator: ", ")) in force)"
            if sameFailures {
                logger.error(
                    "still cannot put everything in force\(kept): \(failures[0])\(failures.count > 1 ? " (+\(failures.count - 1) more)" : ""); retrying in \(delay) (failure \(failuresInARow) in a row)")
            } else {
                logger.error("could not put everything in force\(kept); retrying in \(delay)")
            }
            _ = msa_timerfd_arm(debounceTimer, nanoseconds(delay), 0)
        } else {
            if failuresInARow > 0 { logger.notice("everything is in force again after \(failuresInARow) failing pass\(failuresInARow == 1 ? "" : "es")") }
            failuresInARow = 0
            retryDue = false
        }
        report.error = retryable.first ?? configurationErrors.first
        if report.result == "ok" { report.lastSuccess = now }
        report.lastChanged = changes.map { root.path($0.path) }
        report.managedFiles = result.plan.files.map { root.path($0.path) }
        report.warnings = (result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings).map(\.description)
        report.runtimes = runtimeStatus(result)
        publish(report)

        // Managed directories are watched for hand edits.
        let directories = Set(result.plan.files.map { root.path($0.path) }.map { String($0[..<$0.lastIndex(of: "/")!]) })
            .union(result.plan.containerdHostsDirectory.map { [root.path($0)] } ?? [])
        var configFiles = Set<String>()
        if result.plan.runtimes.contains(.containerd) {
            let loaded = try? ContainerdConfigFiles.load(settings.containerd.configFile, root: root)
            configFiles = Set((loaded?.files.map(\.hostPath) ?? [settings.containerd.configFile]).map { root.path($0) })
        }
        let secrets = Set(result.model.credentials.flatMap(\.files).map { path in
            let onHost = root.path(path)
            return String(onHost[..<(onHost.lastIndex(of: "/") ?? onHost.startIndex)])
        })
        let tlsDirectories = Set(result.plan.tlsSourceFiles.map { root.path($0) }.map { String($0[..<($0.lastIndex(of: "/") ?? $0.startIndex)]) }).sorted()
        if directories.sorted() != outputDirectories || configFiles != containerdConfigFiles || tlsDirectories != tlsSourceDirectories
            || secrets != secretDirectories
        {
            tlsSourceDirectories = tlsDirectories
            outputDirectories = directories.sorted()
            containerdConfigFiles = configFiles
            secretDirectories = secrets
            watchEverything()
        }
        return changes.map { root.path($0.path) }
    }

    private func runtimeStatus(_ result: Reconciliation.Result) -> [StatusReport.Runtime] {
        result.plan.runtimes.map { runtime in
            var entry = StatusReport.Runtime(name: runtime.rawValue, state: "ok")
            if runtime == .containerd {
                entry.hostsDirectory = result.plan.containerdHostsDirectory
                if result.prerequisites?.needsFix == true && !settings.containerd.fixConfig { entry.state = "needs-fix" }
                if pendingRestart != nil {
                    entry.pending = "restart"
                    entry.pendingReason = pendingRestartReason
                }
            }
            if runtime == .crio && pendingReload { entry.pending = "reload" }
            if let pending = entry.pending { entry.state = "\(pending)-pending" }
            if let failures = result.runtimeFailures[runtime] {
                // Partial success: this runtime's files are not (all) in force; the others are.
                let reconciliation = Reconciliation(root: root, settings: settings)
                let configuration = failures.compactMap { reconciliation.crioConfigurationError($0) }
                entry.state = configuration.count == failures.count ? "config-error" : "write-failed"
                entry.error = failures.map { reconciliation.crioConfigurationError($0) ?? $0 }.joined(separator: "; ")
            }
            if let (last, time) = runtimeHistory[runtime.rawValue] {
                entry.lastAction = last
                entry.lastActionTime = time
                if entry.pending == nil && last.result != .done { entry.state = "\(last.action)-\(last.result.rawValue)" }
            }
            return entry
        }
    }

    /// A restart or reload decided by an earlier run (this agent restarted, crashed or was
    /// killed before carrying it out) is picked up from the state directory; it is carried out
    /// after `restartDelay`, under the same policy and rate limit as a fresh one.
    private func resumePendingActions() {
        guard settingsProblem == nil else { return }
        let (record, problem) = Reconciliation(root: root, settings: settings).loadPending()
        if let problem { logger.error("\(problem)") }
        if let restart = record.containerdRestart {
            pendingRestart = restart.originals
            pendingRestartReason = restart.reason
            logger.notice(
                "a containerd restart decided earlier is still pending (\(restart.reason), decided \(StatusReport.ago(Date(timeIntervalSince1970: Double(restart.decidedAt) / 1e6), now: Date()))); carrying it out",
                metadata: ["runtime": "containerd"])
        }
        if let reload = record.crioReload {
            pendingReload = true
            logger.notice("a CRI-O reload decided earlier is still pending (\(reload.reason)); carrying it out", metadata: ["runtime": "crio"])
        }
        if pendingRestart != nil || pendingReload {
            _ = msa_timerfd_arm(restartTimer, nanoseconds(settings.daemon.restartDelay), 0)
        }
    }

    private func performPendingActions() {
        guard settingsProblem == nil else { return }
        let reconciliation = Reconciliation(root: root, settings: settings)
        var actions: [Reconciliation.PendingAction] = []
        var reports: [RuntimeActionReport] = []
        let cannotAct = root != .system ? "--root is \(root), not this host's /" : nil
        if let originals = pendingRestart {
            let since = reconciliation.loadPending().0.lastContainerdRestart.map {
                Duration.microseconds(Int64(Journal.realtimeMicroseconds()) - Int64($0))
            }
            switch RestartDecision.decide(
                policyNever: settings.restart.policy == .never, cannotAct: cannotAct, sinceLastRestart: since,
                minInterval: settings.daemon.minRestartInterval)
            {
            case .now:
                actions.append(.restartContainerd(originals: originals))
            case .wait(let wait):
                logger.notice("containerd restart rate-limited; next in \(wait)")
                _ = msa_timerfd_arm(restartTimer, nanoseconds(wait), 0)
            case .reportOnly(let why):
                reports.append(
                    RuntimeActionReport(
                        unit: "containerd.service", action: "restart", result: .pending,
                        message: "\(pendingRestartReason.map { $0.hasPrefix("restart pending") ? $0 : "restart pending (\($0))" } ?? "restart pending"): \(why)"))
            }
        }
        if pendingReload {
            if settings.restart.policy == .never || cannotAct != nil {
                reports.append(
                    RuntimeActionReport(
                        unit: "crio.service", action: "reload", result: .pending, message: "reload pending: \(cannotAct ?? "restart policy is never")"))
            } else {
                actions.append(.reloadCRIO)
            }
        }
        let (done, problems) = reconciliation.perform(actions)
        // A rollback rewrites config.toml: that event is the agent's own, not a change to check.
        if !actions.isEmpty { handleFileEvents(ownWrites: containerdConfigFiles.sorted()) }
        for problem in problems { logger.error("\(problem)") }
        reports += done
        for report in reports {
            let runtime = report.unit.hasPrefix("containerd") ? "containerd" : "crio"
            if report.result == .pending {
                // Not carried out (policy, no systemd): it stays pending, in the record too;
                // said once, not on every pass.
                if runtimeHistory[runtime]?.0 == report { continue }
            } else if runtime == "containerd" {
                pendingRestart = nil
                pendingRestartReason = nil
            }
            if runtime == "crio" && (report.result != .pending || report.message.hasSuffix("nothing to reload")) { pendingReload = false }
            runtimeHistory[runtime] = (report, Date())
            metrics.restartsTotal["\(runtime)\u{0}\(report.result.rawValue)", default: 0] += 1
            let metadata: Logger.Metadata = ["runtime": "\(runtime)", "unit": "\(report.unit)"]
            switch report.result {
            case .done: logger.notice("\(report.message)", metadata: metadata)
            case .pending: logger.notice("\(report.message)", metadata: metadata)
            case .rolledBack, .failed: logger.critical("\(report.message)", metadata: metadata)
            }
        }
        if var report = status {
            report.runtimes = report.runtimes.map { entry in
                var entry = entry
                if let (last, time) = runtimeHistory[entry.name] {
                    entry.lastAction = last
                    entry.lastActionTime = time
                    let stillPending = entry.name == "containerd" ? pendingRestart != nil : pendingReload
                    if !stillPending {
                        entry.pending = nil
                        entry.pendingReason = nil
                        if entry.error == nil { entry.state = last.result == .done ? "ok" : "\(last.action)-\(last.result.rawValue)" }
                    }
                }
                return entry
            }
            publish(report)
        }
    }

    private func publish(_ report: StatusReport) {
        var report = report
        report.probes = settings.probe.enabled ? tracker.sorted : []
        report.probesEnabled = settings.probe.enabled
        report.nodeErrors = StatusReport.nodeErrors(report.probes)
        status = report
        do {
            try report.write(to: settings.status.file, root: root)
        } catch {
            logger.error("cannot write the status file \(root.path(settings.status.file)): \(error)")
        }
        notifier.status(report.statusLine())
        metrics.health = report.probes
        do {
            try metrics.write(directory: settings.metrics.directory, root: root)
        } catch {
            logger.error("cannot write metrics into \(root.path(settings.metrics.directory)): \(error)")
        }
    }

    /// The words for an invalid agent.yaml in STATUS=, the journal and status.json.
    static func settingsProblem(_ errors: [Diagnostic]) -> String {
        "agent.yaml is invalid: \(errors.first?.description ?? "unknown error")\(errors.count > 1 ? " (+\(errors.count - 1) more)" : "")"
    }

    private func armWatchdog() {
        if settings.daemon.watchdog, let interval = SystemdNotifier.watchdogInterval() {
            let half = nanoseconds(interval) / 2
            _ = msa_timerfd_arm(watchdogTimer, half, half)
        } else {
            _ = msa_timerfd_arm(watchdogTimer, 0, 0)
        }
    }

    private func nanoseconds(_ d: Duration) -> UInt64 {
        UInt64(max(0, d.components.seconds)) * 1_000_000_000 + UInt64(max(0, d.components.attoseconds) / 1_000_000_000)
    }
}

let AtomicWriterTemporaryPrefix = ".mirror-agent-tmp-"

/// Probe results handed from the probing task to the loop.
final class ProbeMailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var box: (Int, [ProbeResult])?

    func put(round: Int, _ results: [ProbeResult]) {
        lock.lock()
        box = (round, results)
        lock.unlock()
    }

    func take() -> (Int, [ProbeResult])? {
        lock.lock()
        defer { lock.unlock() }
        let value = box
        box = nil
        return value
    }
}
