/// When the next probe round runs, and over which endpoints (issue 17, item 3). Pure: the daemon
/// gives it the health after a round and the time, and arms its timer for what comes back.
///
/// Full rounds (every endpoint) run every `interval` plus up to `jitter`, as before. An endpoint
/// that started failing (`failing`: fewer failed probes in a row than the threshold) is probed
/// again on its own after `recheckDelay`, until the threshold decides (down, or up again), so a
/// hung mirror is declared down in about `failureThreshold` probe timeouts instead of
/// `failureThreshold` intervals. Healthy endpoints are never probed more often than every
/// interval, and the full rounds keep their schedule. Hysteresis is untouched: a down endpoint
/// is not rechecked early (it needs `successThreshold` good full rounds to come back), so a
/// flapping mirror changes the files at most once per down/up cycle, as before.
public struct ProbeSchedule: Sendable, Equatable {
    public enum Round: Sendable, Equatable {
        /// Every endpoint, at this time.
        case full(at: Duration)
        /// Only these endpoints (ids, sorted), at this time.
        case recheck([String], at: Duration)
    }

    public var interval: Duration
    public var jitter: Duration
    public var recheckDelay: Duration
    /// When the next full round is due, once one ran.
    public private(set) var nextFull: Duration?

    /// `recheckDelay` defaults to 1 s, never more than the interval.
    public init(interval: Duration, jitter: Duration, recheckDelay: Duration = .seconds(1)) {
        self.interval = interval
        self.jitter = jitter
        self.recheckDelay = min(recheckDelay, interval)
    }

    /// After a round ended at `now` (`full` says which kind it was), with the endpoints' health
    /// as recorded: the next round. `random` in 0...1 picks the jitter.
    public mutating func next(afterFull full: Bool, health: [EndpointHealth], now: Duration, random: Double) -> Round {
        if full || nextFull == nil {
            nextFull = now + interval + jitter * max(0, min(1, random))
        }
        let failing = health.filter { $0.state == .failing && $0.last?.local != true }.map(\.id).sorted()
        let recheckAt = now + recheckDelay
        if !failing.isEmpty, let nextFull, recheckAt < nextFull {
            return .recheck(failing, at: recheckAt)
        }
        return .full(at: nextFull!)
    }
}
