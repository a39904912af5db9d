import DesiredState
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An endpoint's health over rounds, with hysteresis: declared down after `failureThreshold`
/// failures in a row, up again after `successThreshold` successes in a row, so one lost probe
/// does not reshuffle every node's mirror order.
///
/// The states every report uses: `unknown` (not probed yet, or not checkable because of this
/// node: see `last.local`), `up`, `failing` (k of the threshold failed probes in a row, still
/// used), `down`, and, for a down endpoint left out of the runtime files, `demoted`.
public struct EndpointHealth: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case unknown, up, failing, down, demoted }
    public var id: String
    public var url: String
    public var registries: [String]
    public var state: State
    public var consecutiveFailures: Int
    public var consecutiveSuccesses: Int
    /// The threshold `consecutiveFailures` counts towards.
    public var failureThreshold: Int
    public var since: Date?
    public var last: ProbeResult?

    public init(id: String, url: String, registries: [String], state: State = .unknown, failureThreshold: Int) {
        self.id = id
        self.url = url
        self.registries = registries
        self.state = state
        self.consecutiveFailures = 0
        self.consecutiveSuccesses = 0
        self.failureThreshold = failureThreshold
    }

    /// Down, whether or not it was left out of the files.
    public var isDown: Bool { state == .down || state == .demoted }

    /// "up", "failing (1/3)", "down", "demoted", "unknown".
    public var stateText: String {
        state == .failing ? "failing (\(consecutiveFailures)/\(failureThreshold))" : state.rawValue
    }

    /// Why it is not up: the last probe's cause ("not probed yet" before the first).
    public var causeText: String? {
        guard let last else { return state == .unknown ? "not probed yet" : nil }
        if last.up { return isDown ? "recovering (\(consecutiveSuccesses) good probe\(consecutiveSuccesses == 1 ? "" : "s"))" : nil }
        return last.error
    }
}

public struct HealthTracker: Sendable {
    public var failureThreshold: Int
    public var successThreshold: Int
    public private(set) var endpoints: [String: EndpointHealth] = [:]

    public init(failureThreshold: Int = 3, successThreshold: Int = 2) {
        self.failureThreshold = max(1, failureThreshold)
        self.successThreshold = max(1, successThreshold)
    }

    /// A change of declared state, to be logged once.
    public struct Transition: Sendable, Equatable {
        public var id: String
        public var registries: [String]
        public var from: EndpointHealth.State
        public var to: EndpointHealth.State
        public var reason: String?
    }

    /// Makes the tracker know exactly these endpoints (the model's), before any probe: a new
    /// one is `unknown` until probed, one no longer in the model is forgotten.
    public mutating func expect(_ targets: [ProbeTarget]) {
        var next: [String: EndpointHealth] = [:]
        for target in targets {
            var health = endpoints[target.id] ?? EndpointHealth(id: target.id, url: target.url, registries: target.registries, failureThreshold: failureThreshold)
            health.registries = target.registries
            next[target.id] = health
        }
        endpoints = next
    }

    /// Records a round; endpoints no longer probed are forgotten, unless the round was a recheck
    /// of some endpoints only (`forgetOthers: false`). Returns the state changes worth a journal
    /// line.
    ///
    /// A result with `local` set (the node could not make the probe: no trust store, unreadable
    /// CA file) says nothing about the endpoint: it becomes `unknown`, its counts restart, and
    /// it is never declared down for it.
    public mutating func record(_ results: [ProbeResult], forgetOthers: Bool = true) -> [Transition] {
        var transitions: [Transition] = []
        var next: [String: EndpointHealth] = forgetOthers ? [:] : endpoints
        for result in results {
            var health = endpoints[result.id] ?? EndpointHealth(id: result.id, url: result.url, registries: result.registries, failureThreshold: failureThreshold)
            health.registries = result.registries
            health.failureThreshold = failureThreshold
            health.last = result
            let before = health.state == .demoted ? .down : health.state
            var after = before
            if result.local {
                health.consecutiveFailures = 0
                health.consecutiveSuccesses = 0
                after = .unknown
            } else if result.up {
                health.consecutiveSuccesses += 1
                health.consecutiveFailures = 0
                // An endpoint never seen down is up at once; a down one must prove itself.
                if before != .down || health.consecutiveSuccesses >= successThreshold { after = .up }
            } else {
                health.consecutiveFailures += 1
                health.consecutiveSuccesses = 0
                if before == .down || health.consecutiveFailures >= failureThreshold {
                    after = .down
                } else {
                    after = .failing
                }
            }
            if after != before {
                health.since = result.checkedAt
                // Worth a journal line: the first failure, down, up again. Not: the first answer,
                // a failing endpoint answering again, or a probe this node could not make.
                let quiet = (before == .unknown && after == .up) || (before == .failing && after == .up) || after == .unknown
                if !quiet {
                    transitions.append(Transition(id: result.id, registries: result.registries, from: before, to: after, reason: result.error))
                }
            }
            health.state = after == .down && health.state == .demoted ? .demoted : after
            next[result.id] = health
        }
        endpoints = next
        return transitions
    }

    /// Marks which down endpoints were left out of the runtime files (`HealthFilter.demote`).
    public mutating func markDemoted(_ ids: Set<String>) {
        for (id, var health) in endpoints where health.isDown {
            health.state = ids.contains(id) ? .demoted : .down
            endpoints[id] = health
        }
    }

    /// Endpoint ids declared down.
    public var down: Set<String> { Set(endpoints.values.filter(\.isDown).map(\.id)) }

    public var sorted: [EndpointHealth] { endpoints.values.sorted { $0.id < $1.id } }
}

/// Health-aware endpoint order (`probe.onUnhealthy: demote`): mirrors declared down are left
/// out of the rendered files, so runtimes stop waiting on them, and come back when they are up.
public enum HealthFilter {
    /// The model with down endpoints (by id) left out; the notes say what, and `demoted` which
    /// ids were actually left out somewhere.
    public static func demote(_ model: MirrorModel, down: Set<String>) -> (model: MirrorModel, notes: [String], demoted: Set<String>) {
        guard !down.isEmpty else { return (model, [], []) }
        let ids = ProbeTargets.ids(model)
        func isDown(_ mirror: MirrorEndpoint) -> Bool { ids[ProbeKey(mirror)].map(down.contains) ?? false }
        var notes: [String] = []
        var demoted: Set<String> = []
        var result = model
        for index in result.registries.indices {
            let registry = result.registries[index]
            let kept = registry.mirrors.filter { !isDown($0) }
            if kept.count == registry.mirrors.count { continue }
            if kept.isEmpty && registry.sourcePolicy == .neverContactSource {
                notes.append("every mirror of \(registry.source) is down, and it never contacts its source: all mirrors are kept")
                continue
            }
            let dropped = registry.mirrors.filter(isDown)
            for mirror in dropped { if let id = ids[ProbeKey(mirror)] { demoted.insert(id) } }
            notes.append("\(registry.source): left out while down: \(dropped.map(\.displayURL).joined(separator: ", "))")
            result.registries[index].mirrors = kept
        }
        return (result, notes, demoted)
    }
}
