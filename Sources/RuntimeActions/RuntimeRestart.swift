#if canImport(Glibc)
import Glibc
#endif

/// What a restart or reload did, for logs, status and `--json`.
public struct RuntimeActionReport: Sendable, Equatable, Codable {
    public enum Result: String, Sendable, Codable {
        /// Restarted (or reloaded) and active again.
        case done
        /// The runtime did not come back; the previous configuration was restored and it runs again.
        case rolledBack = "rolled-back"
        /// The runtime did not come back, and restoring did not bring it back either.
        case failed
        /// Not done by policy (`restart: never`) or because systemd is not reachable.
        case pending
    }

    public var unit: String
    public var action: String
    public var result: Result
    public var message: String
    public var mainPIDBefore: UInt32?
    public var mainPIDAfter: UInt32?
    public var activeState: String?

    public init(unit: String, action: String, result: Result, message: String, mainPIDBefore: UInt32? = nil, mainPIDAfter: UInt32? = nil, activeState: String? = nil) {
        self.unit = unit
        self.action = action
        self.result = result
        self.message = message
        self.mainPIDBefore = mainPIDBefore
        self.mainPIDAfter = mainPIDAfter
        self.activeState = activeState
    }
}

/// Restarts containerd after its config.toml changed, and restores the previous file if it does
/// not come back.
public struct ContainerdRestart: Sendable {
    public var unit: String
    public var jobTimeout: Duration
    /// How long to wait for a unit that is still "activating" after its job finished.
    public var settleTimeout: Duration

    /// The configuration `rollback` restores, for the report.
    public var configName = "config.toml"

    public init(unit: String = "containerd.service", jobTimeout: Duration = .seconds(90), settleTimeout: Duration = .seconds(30)) {
        self.unit = unit
        self.jobTimeout = jobTimeout
        self.settleTimeout = settleTimeout
    }

    /// Restarts the unit; if it does not end up active, calls `rollback` (which restores the
    /// previous configuration), restarts again, and reports which way it went.
    ///
    /// `stopping`: the agent's own stop job is queued. mirror-agent.service is ordered after
    /// containerd.service, and systemd orders a stop before a start of units so related: a
    /// start of containerd would wait for the agent to exit while the agent waits for it. So
    /// while stopping, the restart job ignores ordering (`ignore-dependencies`, the rescue mode)
    /// and the restore is finished before the agent exits.
    public func run(on bus: SystemdBus, rollback: () -> String?, stopping: () -> Bool = { false }) -> RuntimeActionReport {
        let before = try? bus.mainPID(unit)
        var report = RuntimeActionReport(unit: unit, action: "restart", result: .done, message: "", mainPIDBefore: before)
        let (state, problem) = restartAndSettle(bus, stopping: stopping())
        report.activeState = state
        report.mainPIDAfter = try? bus.mainPID(unit)
        if state == "active" {
            report.message = "\(unit) restarted (MainPID \(before.map(String.init) ?? "?") -> \(report.mainPIDAfter.map(String.init) ?? "?"))"
            return report
        }
        // Did not come back: restore, restart again, say so loudly.
        let restoreProblem = rollback()
        let (againState, againProblem) = restartAndSettle(bus, stopping: stopping())
        report.activeState = againState
        report.mainPIDAfter = try? bus.mainPID(unit)
        let why = problem ?? "ended \(state)"
        if againState == "active" && restoreProblem == nil {
            report.result = .rolledBack
            report.message = "\(unit) failed to come back after the config change (\(why)); the previous \(configName) was restored and \(unit) is active again"
        } else {
            report.result = .failed
            report.message = "\(unit) failed to come back after the config change (\(why)), and restoring the previous \(configName) \(restoreProblem.map { "failed: \($0)" } ?? "did not help") (now \(againState)\(againProblem.map { ", \($0)" } ?? ""))"
        }
        return report
    }

    private func restartAndSettle(_ bus: SystemdBus, stopping: Bool) -> (String, String?) {
        var problem: String?
        do {
            let result = try bus.job("RestartUnit", unit: unit, mode: stopping ? "ignore-dependencies" : "replace", timeout: jobTimeout)
            if result != "done" { problem = "restart job \(result)" }
        } catch {
            problem = error.message
        }
        return (settle(bus), problem)
    }

    /// The unit's state once it stops moving (bounded by `settleTimeout`).
    func settle(_ bus: SystemdBus) -> String {
        let deadline = ContinuousClock.now + settleTimeout
        var state = (try? bus.activeState(unit)) ?? "unknown"
        while (state == "activating" || state == "reloading" || state == "deactivating") && ContinuousClock.now < deadline {
            usleep(200_000)
            state = (try? bus.activeState(unit)) ?? "unknown"
        }
        return state
    }
}

/// Reloads CRI-O after its registries drop-in changed. CRI-O re-reads registries on SIGHUP,
/// asynchronously: a finished reload job does not mean the registries were applied, so its
/// journal is read for the outcome.
public struct CRIOReload: Sendable {
    public var unit: String
    public var jobTimeout: Duration
    public var confirmTimeout: Duration

    public static let appliedMessage = "Applied new registry configuration"
    public static let failedMessage = "system registries reload failed"

    public init(unit: String = "crio.service", jobTimeout: Duration = .seconds(60), confirmTimeout: Duration = .seconds(10)) {
        self.unit = unit
        self.jobTimeout = jobTimeout
        self.confirmTimeout = confirmTimeout
    }

    public func run(on bus: SystemdBus) -> RuntimeActionReport {
        var report = RuntimeActionReport(unit: unit, action: "reload", result: .done, message: "")
        let since = Journal.realtimeMicroseconds()
        do {
            let method = (try? bus.canReload(unit)) == false ? "ReloadOrRestartUnit" : "ReloadUnit"
            report.action = method == "ReloadUnit" ? "reload" : "reload-or-restart"
            let result = try bus.job(method, unit: unit, timeout: jobTimeout)
            report.activeState = try? bus.activeState(unit)
            guard result == "done" else {
                report.result = .failed
                report.message = "\(method) \(unit) ended \(result)"
                return report
            }
            if method == "ReloadOrRestartUnit" {
                // A restart, not a reload: CRI-O reads registries.conf(.d) afresh at start and
                // logs no reload message, so its ActiveState is the answer.
                let active = report.activeState == "active"
                report.result = active ? .done : .failed
                report.message = "\(unit) cannot reload (CanReload=no): restarted through ReloadOrRestartUnit, now \(report.activeState ?? "unknown")"
                return report
            }
        } catch {
            report.result = .failed
            report.message = error.message
            return report
        }
        // Bounded wait for CRI-O's own word in the journal.
        let deadline = ContinuousClock.now + confirmTimeout
        while ContinuousClock.now < deadline {
            switch Journal.find(unit: unit, since: since, [Self.appliedMessage, Self.failedMessage]) {
            case 0:
                report.message = "\(unit) reloaded: \"\(Self.appliedMessage)\""
                return report
            case 1:
                report.result = .failed
                report.message = "\(unit) reloaded but says \"\(Self.failedMessage)\" (see journalctl -u \(unit))"
                return report
            default:
                usleep(200_000)
            }
        }
        report.message = "\(unit) reloaded; no confirmation in its journal within \(confirmTimeout) (CRI-O applies registries asynchronously)"
        return report
    }
}
