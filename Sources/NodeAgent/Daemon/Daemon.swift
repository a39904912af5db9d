import AgentCore
import CLinuxShim
import DesiredState
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import HealthProbe
import Logging
import RuntimeActions
import RuntimeWriters
import Synchronization

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
///   They run on a worker thread: the loop keeps answering the watchdog, signals and file events.
/// - SIGHUP re-reads agent.yaml (RELOADING=1 ... READY=1); SIGTERM stops (STOPPING=1), after the
///   runtime action in progress (its restore included) has finished.
///
/// What to do when is decided by `DaemonPolicy` (pure, table-tested); this class performs it.
final class Daemon {
    let root: HostRoot
    var settings: AgentSettings
    let logger: Logger
    let notifier = SystemdNotifier()
    let watcher: FileWatcher

    var generation = 0
    var status: StatusReport?
    var pendingRestart: [Reconciliation.ConfigOriginal]?
    /// Why containerd's restart is pending ("config.toml fixed ...", "restart pending: containerd
    /// started before config.toml changed", ...), for the journal and status.
    var pendingRestartReason: String?
    var pendingReload = false
    /// agent.yaml was invalid when the daemon started: it runs report-only (passes as dry runs,
    /// no config.toml patch, no restart or reload) until a valid agent.yaml is reloaded, rather
    /// than on defaults that may undo an admin's explicit choices (fail closed).
    var settingsProblem: (full: String, public: String)?
    var runtimeHistory: [String: (RuntimeActionReport, Date)] = [:]
    var outputDirectories: [String] = []
    /// containerd's config.toml and its imports (paths on this machine): a change by anyone is
    /// checked by a pass (fixed where needed, and a restart planned if containerd runs older).
    var containerdConfigFiles: Set<String> = []
    /// Directories of the files the desired state refers to (paths on this machine): secret files
    /// credentials are read from, and the TLS files the certs.d copies come from. Any event in one
    /// (a file rewritten, renamed over, a Secret mount's `..data` swapped) starts a pass, which
    /// reads them again. Kept from the last valid pass while the input is invalid, so fixing a
    /// secret file is noticed too.
    var referencedDirectories: Set<String> = []

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
    /// The worker's end of a runtime action is signalled through this pipe.
    let actionDone: (read: Int32, write: Int32)
    /// Debounce, retries with backoff, restart delay, actions in flight, stopping.
    var policy: DaemonPolicy
    /// The runtime action on the worker, if any.
    var actionJob: ActionJob?
    /// Set by the `.exit` effect: the loop returns.
    var exitRequested = false
    let clockOrigin = ContinuousClock.now
    var monotonicNow: Duration { ContinuousClock.now - clockOrigin }
    /// What the last failing pass could not do, and the warnings of the last pass: logged again
    /// only when they change, so a persistent failure logs one line per retry.
    var lastFailures: [String] = []
    var lastWarnings: Set<String> = []

    init(root: HostRoot, settings: AgentSettings, logger: Logger, settingsProblem: (full: String, public: String)? = nil) throws(RuntimeError) {
        self.root = root
        self.settings = settings
        self.settingsProblem = settingsProblem
        self.logger = logger
        watcher = try FileWatcher()
        probeSchedule = ProbeSchedule(interval: settings.probe.interval, jitter: settings.probe.jitter)
        signals = msa_signalfd_open()
        debounceTimer = msa_timerfd_open()
        restartTimer = msa_timerfd_open()
        watchdogTimer = msa_timerfd_open()
        statusTimer = msa_timerfd_open()
        probeTimer = msa_timerfd_open()
        probeDone = try Self.wakePipe()
        actionDone = try Self.wakePipe()
        policy = DaemonPolicy(debounce: settings.daemon.debounce, restartDelay: settings.daemon.restartDelay)
        tracker = HealthTracker(failureThreshold: settings.probe.failureThreshold, successThreshold: settings.probe.successThreshold)
        guard signals >= 0, debounceTimer >= 0, restartTimer >= 0, watchdogTimer >= 0, statusTimer >= 0, probeTimer >= 0 else {
            throw RuntimeError("cannot set up signalfd/timerfd: \(String(cString: strerror(errno)))")
        }
    }

    /// A non-blocking, close-on-exec pipe a task or thread writes a byte into to wake the loop.
    private static func wakePipe() throws(RuntimeError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw RuntimeError("pipe: \(String(cString: strerror(errno)))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        return (ends[0], ends[1])
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

        // Signals first, so a stop is seen before more work is started in the same round.
        let sources: [(DaemonPolicy.Source, Int32)] = [
            (.signals, signals), (.fileEvents, watcher.fd), (.debounceTimer, debounceTimer), (.restartTimer, restartTimer),
            (.watchdogTimer, watchdogTimer), (.statusTimer, statusTimer), (.probeTimer, probeTimer), (.probeDone, probeDone.read),
            (.actionDone, actionDone.read),
        ]
        var fds = sources.map { pollfd(fd: $0.1, events: Int16(POLLIN), revents: 0) }
        while !exitRequested {
            for i in fds.indices { fds[i].revents = 0 }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                logger.critical("poll failed: \(String(cString: strerror(errno)))")
                return 1
            }
            for (i, (source, _)) in sources.enumerated() where fds[i].revents != 0 && !exitRequested {
                handle(source)
            }
        }
        return 0
    }

    /// One ready event source.
    private func handle(_ source: DaemonPolicy.Source) {
        switch source {
        case .signals:
            var request: Int32 = 0
            let signal = msa_signalfd_read_value(signals, &request)
            if signal == SIGTERM || signal == SIGINT {
                logger.info("stopping on signal \(signal)")
                feed(.terminateRequested)
            } else if signal == SIGHUP {
                feed(.reloadRequested(request: request))
            }
        case .fileEvents: handleFileEvents()
        case .debounceTimer: if msa_timerfd_read(debounceTimer) > 0 { feed(.debounceExpired) }
        case .restartTimer: if msa_timerfd_read(restartTimer) > 0 { feed(.restartTimerExpired) }
        case .watchdogTimer: if msa_timerfd_read(watchdogTimer) > 0 { notifier.watchdog() }
        case .statusTimer: if msa_timerfd_read(statusTimer) > 0, let status { notifier.status(statusLine(status)) }
        case .probeTimer: if msa_timerfd_read(probeTimer) > 0 { startProbeRound() }
        case .probeDone: probeRoundFinished()
        case .actionDone: actionsFinished()
        }
    }

    /// Hands an event to the policy and carries out what it says.
    private func feed(_ event: DaemonPolicy.Event) {
        for effect in policy.handle(event) { perform(effect) }
    }

    private func perform(_ effect: DaemonPolicy.Effect) {
        switch effect {
        case .armDebounce(let delay):
            _ = msa_timerfd_arm(debounceTimer, max(1, nanoseconds(delay)), 0)
        case .runPass(let reason, let drift):
            let changed = reconcile(reason: reason)
            handleFileEvents(ownWrites: changed)
            if !drift.isEmpty && !changed.isEmpty {
                for path in changed {
                    logger.warning("repaired drift: \(path) was changed by hand and is rewritten", metadata: ["file": "\(path)"])
                }
            }
        case .armRestartTimer(let delay):
            _ = msa_timerfd_arm(restartTimer, max(1, nanoseconds(delay)), 0)
        case .startActions:
            startPendingActions()
        case .reload(let request):
            reload(request: request)
        case .publishStatus:
            if var report = status {
                report.probes = tracker.sorted
                publish(report)
            }
        case .scheduleRetry, .recovered:
            break  // said by the pass that failed or recovered, which knows what (see reconcile)
        case .notifyStopping(let waiting):
            notifier.stopping()
            if waiting, let job = actionJob {
                job.requestStop()
                let what = "stopping: waiting for the \(job.summary) in progress to finish (its restore included)"
                notifier.status(what)
                logger.notice("\(what)")
            }
        case .exit:
            exitRequested = true
        }
    }

    /// STATUS=, with the action the worker is carrying out.
    private func statusLine(_ report: StatusReport) -> String {
        let line = report.statusLine()
        guard let job = actionJob else { return line }
        return policy.stopping ? "stopping: waiting for the \(job.summary) in progress to finish; " + line : "\(job.summary) in progress; " + line
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
        feed(.probeRoundFinished(healthChanged: settings.probe.onUnhealthy == .demote && tracker.down != downBefore))
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
        let referenced = referencedDirectories.subtracting(outputDirectories).subtracting(desiredDirectories).subtracting(configDirectories)
        watcher.watch(desiredDirectories + outputDirectories + configDirectories.subtracting(outputDirectories).sorted() + referenced.sorted())
    }

    /// Sorts pending file events into desired-state changes and changes to managed files.
    /// `ownWrites` are paths this process just wrote: their events are its own, not drift (the
    /// kernel queues them during the writes, so they are all pending when a pass returns).
    private func handleFileEvents(ownWrites: [String] = []) {
        let desired = desiredDirectories
        var desiredChanged = false
        var outputChanged: Set<String> = []
        var seen: PassTiming.Change?
        let events = watcher.read()
        if events.contains(where: { $0.mask & UInt32(IN_Q_OVERFLOW) != 0 }) {
            logger.warning("the inotify event queue overflowed (more changes at once than fs.inotify.max_queued_events allows): events were lost, so everything is read again")
        }
        for event in events {
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
                    read = event.name.isEmpty || DesiredStateLoader.readsThrough(event.name) || path == root.path(DesiredStateLoader.mainFile)
                }
            } else if desired.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                // A desired-state directory itself appeared, went away or was replaced.
                desiredChanged = true
            } else if containerdConfigFiles.contains(path) {
                // While a restart runs, config.toml's writes are its own (a rollback rewrites it,
                // always by a rename into place); a hand edit meanwhile is still found by the
                // stale check of the next pass. A change of mode alone is never the action's, so
                // it is drift, repaired by the pass that follows the action (a config.toml made
                // readable again while it holds credentials).
                let attributesOnly = event.mask & UInt32(IN_ATTRIB | IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM) == UInt32(IN_ATTRIB)
                if !policy.actionInFlight || attributesOnly { outputChanged.insert(path) }
            } else if outputDirectories.contains(event.directory) || outputDirectories.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                outputChanged.insert(path)
            } else if referencedDirectories.contains(event.directory) || referencedDirectories.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) {
                // A secret or TLS file rotated (or its directory replaced): read them again.
                desiredChanged = true
            } else {
                continue
            }
            if seen != .complete { seen = ChangeKind.of(mask: event.mask, read: read) }
        }
        // New input is tried at once when complete (else after the debounce), one more pass per
        // burst (the policy's PassTiming); drift waits for a retry that is due.
        feed(.filesChanged(input: desiredChanged, drift: outputChanged, change: seen, at: monotonicNow))
    }

    /// `request` is the number `mirror-agent reload` sent with SIGHUP; the status file echoes it
    /// with the outcome, which is how that command (systemd's ExecReload=) knows the result.
    private func reload(request: Int32 = 0) {
        notifier.reloading(status: "reloading agent.yaml")
        let (fresh, diagnostics) = AgentSettings.load(root: root)
        // status.json says where and what kind, never the values (SECURITY.md); the journal says all.
        var refused = StatusReport.publicErrors(diagnostics.errors)
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
            policy.debounce = settings.daemon.debounce
            policy.restartDelay = settings.daemon.restartDelay
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
        defer { feed(.passEnded(at: monotonicNow)) }
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
            report.error = StatusReport.publicErrors(errors)
            if let previous = status {
                report.registries = previous.registries
                report.mirrors = previous.mirrors
                report.desiredFiles = previous.desiredFiles
            }
            report.runtimes = status?.runtimes ?? []
            metrics.reconcileTotal["invalid", default: 0] += 1
            publish(report)
            feed(.passFinished(.invalid, actionsDue: false))
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
        let actionsDue = pendingRestart != nil || pendingReload

        report.result = failures.isEmpty ? "ok" : "failed"
        if let settingsProblem {
            // Report-only: what a pass would change is said, nothing is written.
            report.result = "invalid"
            let reportOnly = "report-only: nothing is written or restarted until a valid agent.yaml is reloaded"
            report.error = "\(settingsProblem.public); \(reportOnly)"
            if generation == 1 || !changes.isEmpty { logger.error("\(settingsProblem.full); \(reportOnly)\(changes.isEmpty ? "" : " (\(changes.count) file\(changes.count == 1 ? "" : "s") would change)")") }
            metrics.reconcileTotal["invalid", default: 0] += 1
            report.lastChanged = []
            report.managedFiles = result.plan.files.map { root.path($0.path) }
            report.warnings = (result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings).map(\.publicDescription)
            report.runtimes = runtimeStatus(result)
            publish(report)
            feed(.passFinished(.invalid, actionsDue: actionsDue))
            return []
        }
        metrics.reconcileTotal[report.result, default: 0] += 1
        // Retry with backoff (nothing else may change to wake us up; one line per retry), except
        // for configuration errors: logged when they first appeared, nothing to retry until
        // something changes.
        let kinds: [DaemonPolicy.FailureKind] = failures.map {
            reconciliation.crioConfigurationError($0, code: result.outcome.failureCodes[$0]) == nil ? .transient(errno: result.outcome.failureCodes[$0]) : .configuration
        }
        for effect in policy.handle(.passFinished(failures.isEmpty ? .ok : .failed(kinds), actionsDue: actionsDue)) {
            switch effect {
            case .scheduleRetry(let delay, let failuresInARow):
                let inForce = result.plan.runtimes.filter { result.runtimeFailures[$0] == nil }.map(\.rawValue)
                let kept = inForce.isEmpty || result.runtimeFailures.isEmpty ? "" : " (\(inForce.joined(separator: ", ")) in force)"
                if sameFailures {
                    logger.error(
                        "still cannot put everything in force\(kept): \(failures[0])\(failures.count > 1 ? " (+\(failures.count - 1) more)" : ""); retrying in \(delay) (failure \(failuresInARow) in a row)")
                } else {
                    logger.error("could not put everything in force\(kept); retrying in \(delay)")
                }
            case .recovered(let failuresInARow):
                logger.notice("everything is in force again after \(failuresInARow) failing pass\(failuresInARow == 1 ? "" : "es")")
            default:
                perform(effect)
            }
        }
        report.error = retryable.first ?? configurationErrors.first
        if report.result == "ok" { report.lastSuccess = now }
        report.lastChanged = changes.map { root.path($0.path) }
        report.managedFiles = result.plan.files.map { root.path($0.path) }
        report.warnings = (result.diagnostics.warnings + result.plan.warnings + result.outcome.warnings).map(\.publicDescription)
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
        let referenced = Set((result.model.credentials.flatMap(\.files) + result.plan.tlsSourceFiles).map { path in
            let onHost = root.path(path)
            return String(onHost[..<(onHost.lastIndex(of: "/") ?? onHost.startIndex)])
        })
        if directories.sorted() != outputDirectories || configFiles != containerdConfigFiles || referenced != referencedDirectories {
            outputDirectories = directories.sorted()
            containerdConfigFiles = configFiles
            referencedDirectories = referenced
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
        if pendingRestart != nil || pendingReload { feed(.actionsResumed) }
    }

    /// Decides which pending actions are due now (policy, rate limit) and hands them to a worker
    /// thread; the loop learns of their end through `actionDone`. Nothing to do ends at once.
    private func startPendingActions() {
        guard settingsProblem == nil else { return feed(.actionsFinished) }
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
        guard !actions.isEmpty else {
            finishActions(actions: [], reports: reports, problems: [])
            return feed(.actionsFinished)
        }
        let job = ActionJob(reconciliation: reconciliation, actions: actions, reports: reports, wake: actionDone.write)
        actionJob = job
        if let status { notifier.status(statusLine(status)) }
        job.start()
    }

    /// The worker is done: its outcome is reported, then the policy says what comes next
    /// (passes and reloads that waited, or the stop).
    private func actionsFinished() {
        var byte: UInt8 = 0
        while read(actionDone.read, &byte, 1) > 0 {}
        guard let job = actionJob, let (done, problems) = job.outcome() else { return }
        actionJob = nil
        finishActions(actions: job.actions, reports: job.reports + done, problems: problems)
        feed(.actionsFinished)
    }

    private func finishActions(actions: [Reconciliation.PendingAction], reports: [RuntimeActionReport], problems: [String]) {
        // A rollback rewrites config.toml: that event is the agent's own, not a change to check.
        if !actions.isEmpty { handleFileEvents(ownWrites: containerdConfigFiles.sorted()) }
        for problem in problems { logger.error("\(problem)") }
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
        notifier.status(statusLine(report))
        metrics.health = report.probes
        do {
            try metrics.write(directory: settings.metrics.directory, root: root)
        } catch {
            logger.error("cannot write metrics into \(root.path(settings.metrics.directory)): \(error)")
        }
    }

    /// The words for an invalid agent.yaml: in full for the journal, by place and kind for
    /// STATUS= and status.json.
    static func settingsProblem(_ errors: [Diagnostic]) -> (full: String, public: String) {
        let more = errors.count > 1 ? " (+\(errors.count - 1) more)" : ""
        return (
            "agent.yaml is invalid: \(errors.first?.description ?? "unknown error")\(more)",
            "agent.yaml is invalid: \(StatusReport.publicErrors(errors) ?? "unknown error")"
        )
    }

    private func armWatchdog() {
        if settings.daemon.watchdog, let interval = SystemdNotifier.watchdogInterval() {
            let half = nanoseconds(interval) / 2
            _ = msa_timerfd_arm(watchdogTimer, half, half)
        } else {
            _ = msa_timerfd_arm(watchdogTimer, 0, 0)
        }
    }

    /// For timerfd: whole nanoseconds, never negative, never trapping.
    private func nanoseconds(_ d: Duration) -> UInt64 {
        UInt64(max(0, d.saturatingNanoseconds))
    }
}

let AtomicWriterTemporaryPrefix = ".mirror-agent-tmp-"

/// Runtime actions (containerd's restart with its verification and rollback, CRI-O's reload and
/// confirmation) carried out on a worker thread, so the loop stays free for the watchdog,
/// signals and file events. The thread owns its own D-Bus connection; its outcome is handed
/// back under a lock, and its end is signalled through a pipe the loop polls.
final class ActionJob: @unchecked Sendable {
    let reconciliation: Reconciliation
    let actions: [Reconciliation.PendingAction]
    /// Reports decided on the loop before the worker started (pending by policy).
    let reports: [RuntimeActionReport]
    private let wake: Int32
    private let state = Mutex<(stopRequested: Bool, result: ([RuntimeActionReport], [String])?)>((false, nil))

    init(reconciliation: Reconciliation, actions: [Reconciliation.PendingAction], reports: [RuntimeActionReport], wake: Int32) {
        self.reconciliation = reconciliation
        self.actions = actions
        self.reports = reports
        self.wake = wake
    }

    /// "containerd restart", "CRI-O reload", "containerd restart and CRI-O reload".
    var summary: String {
        actions.map { action in
            switch action {
            case .restartContainerd: "containerd restart"
            case .reloadCRIO: "CRI-O reload"
            }
        }.joined(separator: " and ")
    }

    func start() {
        WorkerThread.start(name: "runtime-actions") { [self] in
            let outcome = reconciliation.perform(actions, shouldStop: { [self] in state.withLock { $0.stopRequested } })
            state.withLock { $0.result = outcome }
            var byte: UInt8 = 1
            _ = write(wake, &byte, 1)
        }
    }

    /// The agent is stopping: the action in progress finishes (its restore included); actions
    /// not started yet are left pending (in the durable record) for the next start.
    func requestStop() { state.withLock { $0.stopRequested = true } }

    /// The worker's result, once it is done.
    func outcome() -> ([RuntimeActionReport], [String])? { state.withLock { $0.result } }
}

/// Probe results handed from the probing task to the loop.
final class ProbeMailbox: Sendable {
    private let box = Mutex<(Int, [ProbeResult])?>(nil)

    func put(round: Int, _ results: [ProbeResult]) {
        box.withLock { $0 = (round, results) }
    }

    func take() -> (Int, [ProbeResult])? {
        box.withLock { box in
            defer { box = nil }
            return box
        }
    }
}

/// A detached POSIX thread with a name (as `ps -L` and /proc/PID/task/TID/comm show it), for
/// work that blocks: Foundation's `Thread` without Foundation.
enum WorkerThread {
    private final class Body {
        let name: String
        let run: () -> Void
        init(_ name: String, _ run: @escaping () -> Void) {
            self.name = name
            self.run = run
        }
    }

    static func start(name: String, _ run: @escaping @Sendable () -> Void) {
        let body = Unmanaged.passRetained(Body(name, run)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let started = pthread_create(&thread, &attributes, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            _ = msa_set_thread_name(body.name)
            body.run()
            return nil
        }, body)
        guard started == 0 else {
            // No thread: run it here rather than lose the work (the loop waits on its pipe).
            Unmanaged<Body>.fromOpaque(body).takeRetainedValue().run()
            return
        }
    }
}
