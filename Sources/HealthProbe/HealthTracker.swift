import DesiredState
import Foundation

/// An endpoint's health over rounds, with hysteresis: declared down after `failureThreshold`
/// failures in a row, up again after `successThreshold` successes in a row, so one lost probe
/// does not reshuffle every node's mirror order.
public struct EndpointHealth: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case unknown, up, down }
    public var url: String
    public var registries: [String]
    public var state: State
    public var consecutiveFailures: Int
    public var consecutiveSuccesses: Int
    public var since: Date?
    public var last: ProbeResult?
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
        public var url: String
        public var registries: [String]
        public var from: EndpointHealth.State
        public var to: EndpointHealth.State
        public var reason: String?
    }

    /// Records a round; endpoints no longer probed are forgotten. Returns the state changes.
    public mutating func record(_ results: [ProbeResult]) -> [Transition] {
        var transitions: [Transition] = []
        var next: [String: EndpointHealth] = [:]
        for result in results {
            var health = endpoints[result.url]
                ?? EndpointHealth(url: result.url, registries: result.registries, state: .unknown, consecutiveFailures: 0, consecutiveSuccesses: 0)
            health.registries = result.registries
            health.last = result
            let before = health.state
            if result.up {
                health.consecutiveSuccesses += 1
                health.consecutiveFailures = 0
                // An endpoint never seen down is up at once; a down one must prove itself.
                if health.state == .unknown || (health.state == .down && health.consecutiveSuccesses >= successThreshold) {
                    health.state = .up
                }
            } else {
                health.consecutiveFailures += 1
                health.consecutiveSuccesses = 0
                if health.state != .down && health.consecutiveFailures >= failureThreshold { health.state = .down }
            }
            if health.state != before {
                health.since = result.checkedAt
                if !(before == .unknown && health.state == .up) {
                    transitions.append(Transition(url: result.url, registries: result.registries, from: before, to: health.state, reason: result.error))
                }
            }
            next[result.url] = health
        }
        endpoints = next
        return transitions
    }

    /// Probe URLs declared down.
    public var down: Set<String> { Set(endpoints.values.filter { $0.state == .down }.map(\.url)) }

    public var sorted: [EndpointHealth] { endpoints.values.sorted { $0.url < $1.url } }
}

/// Health-aware endpoint order (`probe.onUnhealthy: demote`): mirrors declared down are left
/// out of the rendered files, so runtimes stop waiting on them, and come back when they are up.
public enum HealthFilter {
    public static func demote(_ model: MirrorModel, down: Set<String>) -> (MirrorModel, [String]) {
        guard !down.isEmpty else { return (model, []) }
        var notes: [String] = []
        var result = model
        for index in result.registries.indices {
            let registry = result.registries[index]
            let kept = registry.mirrors.filter { !down.contains(ProbeTargets.url(of: $0)) }
            if kept.count == registry.mirrors.count { continue }
            if kept.isEmpty && registry.sourcePolicy == .neverContactSource {
                notes.append("every mirror of \(registry.source) is down, and it never contacts its source: all mirrors are kept")
                continue
            }
            let dropped = registry.mirrors.filter { down.contains(ProbeTargets.url(of: $0)) }.map(\.displayURL)
            notes.append("\(registry.source): left out while down: \(dropped.joined(separator: ", "))")
            result.registries[index].mirrors = kept
        }
        return (result, notes)
    }
}
