extension Duration {
    /// Why a duration was refused.
    public enum ParseError: Error, Equatable, Sendable {
        /// Not a duration such as `200ms`, `2s` or `1m30s`.
        case invalid
        /// A duration, but too long to represent (more than about 292 years).
        case overflow
    }

    /// Parses a Go-style duration: `200ms`, `2s`, `1m30s`, `1.5s` (units ns, us, µs, ms, s, m, h),
    /// with checked integer arithmetic in nanoseconds, as Go's `time.ParseDuration` does: a value
    /// past Int64 nanoseconds is `.overflow`, never a trap.
    public static func parseChecked(_ text: String) -> Result<Duration, ParseError> {
        let units: [(String, Int64)] = [
            ("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
            ("m", 60_000_000_000), ("h", 3_600_000_000_000),
        ]
        var rest = Substring(text)
        guard !rest.isEmpty else { return .failure(.invalid) }
        var total: Int64 = 0
        var overflow = false
        while !rest.isEmpty {
            let whole = rest.prefix(while: { $0.isASCII && $0.isNumber })
            rest = rest.dropFirst(whole.count)
            var fraction = Substring()
            if rest.first == "." {
                rest = rest.dropFirst()
                fraction = rest.prefix(while: { $0.isASCII && $0.isNumber })
                rest = rest.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else { return .failure(.invalid) }
            guard let unit = units.first(where: { rest.hasPrefix($0.0) && !($0.0 == "m" && rest.hasPrefix("ms")) }) else {
                return .failure(.invalid)
            }
            rest = rest.dropFirst(unit.0.count)
            // whole * unit, checked.
            var value: Int64 = 0
            for digit in whole {
                let d = Int64(digit.asciiValue! - 48)
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { overflow = true; break }
                value = a
            }
            let (scaled, o3) = value.multipliedReportingOverflow(by: unit.1)
            if o3 { overflow = true }
            // fraction * unit, digit by digit (at most 18 digits matter for nanoseconds).
            var part: Int64 = 0
            var scale = unit.1
            for digit in fraction.prefix(18) {
                scale /= 10
                if scale == 0 { break }
                part += Int64(digit.asciiValue! - 48) * scale
            }
            let (sum1, o4) = total.addingReportingOverflow(scaled)
            let (sum2, o5) = sum1.addingReportingOverflow(part)
            if o4 || o5 { overflow = true }
            if overflow { return .failure(.overflow) }
            total = sum2
        }
        return .success(.nanoseconds(total))
    }

    /// ``parseChecked(_:)``, nil for anything refused.
    public static func parse(_ text: String) -> Duration? {
        try? parseChecked(text).get()
    }

    /// Whole nanoseconds, saturating at Int64.max (never traps).
    public var saturatingNanoseconds: Int64 {
        let (s, a) = components
        let (ns, o1) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o1 { return s < 0 ? .min : .max }
        let (sum, o2) = ns.addingReportingOverflow(a / 1_000_000_000)
        return o2 ? .max : sum
    }
}
