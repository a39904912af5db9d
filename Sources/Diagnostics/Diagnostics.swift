/// Where a value came from: a file and a 1-based line and column.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// The location of a whole file, used when nothing more precise is known (for example a
    /// file that cannot be read).
    public static func file(_ path: String) -> SourceLocation {
        SourceLocation(file: path, line: 1, column: 1)
    }

    public var description: String { "\(file):\(line):\(column)" }

    /// `file:line`, the short form used in rendered file headers and reports.
    public var fileAndLine: String { "\(file):\(line)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One problem found in input or while acting on it.
///
/// Errors print as `path:line:column: message`, warnings as
/// `path:line:column: warning: message`, so editors and people read them the same way.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible, Codable {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error
        case warning
    }

    public var severity: Severity
    public var location: SourceLocation?
    public var message: String

    /// The message goes through ``Quote/message(_:)``: one line, no URL credentials, bounded.
    public init(_ severity: Severity, at location: SourceLocation?, _ message: String) {
        self.severity = severity
        self.location = location
        self.message = Quote.message(message)
    }

    public static func error(_ message: String, at location: SourceLocation?) -> Diagnostic {
        Diagnostic(.error, at: location, message)
    }

    public static func warning(_ message: String, at location: SourceLocation?) -> Diagnostic {
        Diagnostic(.warning, at: location, message)
    }

    public var description: String {
        let prefix = location.map { "\($0): " } ?? ""
        switch severity {
        case .error: return prefix + message
        case .warning: return prefix + "warning: " + message
        }
    }
}

/// Problems collected while reading input, so that one run reports every problem instead of
/// stopping at the first.
public struct DiagnosticList: Sendable, Equatable {
    public private(set) var items: [Diagnostic] = []

    public init(_ items: [Diagnostic] = []) { self.items = items }

    public mutating func append(_ diagnostic: Diagnostic) { items.append(diagnostic) }
    /// Records an error thrown by decoding code (always a ``Diagnostic`` in this project).
    public mutating func append(_ error: any Error) {
        items.append(error as? Diagnostic ?? .error(String(describing: error), at: nil))
    }
    public mutating func append(contentsOf other: DiagnosticList) { items += other.items }
    public mutating func append(contentsOf other: [Diagnostic]) { items += other }

    public mutating func error(_ message: String, at location: SourceLocation?) {
        items.append(.error(message, at: location))
    }

    public mutating func warning(_ message: String, at location: SourceLocation?) {
        items.append(.warning(message, at: location))
    }

    public var errors: [Diagnostic] { items.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { items.filter { $0.severity == .warning } }
    public var hasErrors: Bool { items.contains { $0.severity == .error } }

    /// Sorted by place, so output does not depend on the order work happened in.
    public var sorted: [Diagnostic] {
        items.enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case let (l?, r?) where l != r: return l < r
            case (nil, _?): return false
            case (_?, nil): return true
            default: return a.offset < b.offset
            }
        }.map(\.element)
    }
}

/// Suggests the closest candidate to a misspelled name ("did you mean ...").
public func closestMatch(to word: String, in candidates: [String]) -> String? {
    let lowered = word.lowercased()
    var best: (String, Int)?
    for candidate in candidates {
        let distance = editDistance(lowered, candidate.lowercased())
        if best == nil || distance < best!.1 { best = (candidate, distance) }
    }
    guard let (candidate, distance) = best else { return nil }
    // A suggestion further away than about a third of the word is noise.
    return distance <= max(2, word.count / 3) ? candidate : nil
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
