/// Line edits of a TOML file that leave every other line, comment and the order as they were.
struct TOMLEditor {
    private(set) var lines: [String]
    private let trailingNewline: Bool

    init(_ text: String) {
        trailingNewline = text.hasSuffix("\n") || text.isEmpty
        lines = TOMLLayout(text).lines
    }

    var text: String { lines.joined(separator: "\n") + (trailingNewline ? "\n" : "") }

    /// Sets `path` (a full key path) to `value` (TOML text): in place when the key exists, under
    /// its table's header when the table exists, else as a new table at the end.
    mutating func set(_ path: [String], _ value: String) {
        let layout = TOMLLayout(text)
        if let key = layout.key(path) {
            let line = lines[key.firstLine]
            guard let equals = line.firstIndex(of: "=") else { return }
            var replacement = String(line[...equals]) + " " + value
            if key.firstLine == key.lastLine, let comment = trailingComment(line[line.index(after: equals)...]) {
                replacement += " " + comment
            }
            lines.replaceSubrange(key.firstLine...key.lastLine, with: [replacement])
            return
        }
        if path.count == 1 {
            // A root key goes before the first table header.
            lines.insert(TOMLLayout.keyText(path) + " = " + value, at: layout.rootEnd)
            return
        }
        if let table = layout.table(Array(path.dropLast())) {
            let header = lines[table.headerLine]
            let indent = String(header.prefix(while: { $0 == " " || $0 == "\t" })) + "  "
            lines.insert(indent + TOMLLayout.keyText([path.last!]) + " = " + value, at: table.headerLine + 1)
            return
        }
        if lines.last.map({ !$0.trimmingCharacters(in: " \t").isEmpty }) ?? false { lines.append("") }
        lines.append("# Added by mirror-agent: registry mirrors need this setting.")
        lines.append("[" + TOMLLayout.keyText(Array(path.dropLast())) + "]")
        lines.append("  " + TOMLLayout.keyText([path.last!]) + " = " + value)
    }

    /// Appends lines at the end, after one blank line.
    mutating func append(_ block: [String]) {
        while let last = lines.last, last.trimmingCharacters(in: " \t").isEmpty { lines.removeLast() }
        if !lines.isEmpty { lines.append("") }
        lines += block
    }

    /// Removes a block the agent wrote: the marker comment (starting with `prefix`) right above
    /// the table header, the header, and the key lines right under it, up to the first blank,
    /// comment or header line, plus the blank line before the marker. Anything else at or under
    /// `path` (an admin's table without the marker) is removed as ``remove(_:)`` does.
    mutating func removeBlock(_ path: [String], markerPrefix prefix: String) {
        let layout = TOMLLayout(text)
        guard let table = layout.table(path), table.headerLine > 0,
            lines[table.headerLine - 1].trimmingCharacters(in: " \t").hasPrefix(prefix)
        else {
            remove(path)
            return
        }
        var start = table.headerLine - 1
        var end = table.headerLine + 1
        while end < lines.count {
            let line = lines[end].trimmingCharacters(in: " \t")
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("[") { break }
            end += 1
        }
        if start > 0, lines[start - 1].trimmingCharacters(in: " \t").isEmpty { start -= 1 }
        lines.removeSubrange(start..<end)
    }

    /// Removes every table and key at or under `path`.
    mutating func remove(_ path: [String]) {
        let layout = TOMLLayout(text)
        var doomed = IndexSet()
        for table in layout.tables where table.path.starts(with: path) {
            doomed.insert(integersIn: table.headerLine..<table.end)
        }
        for key in layout.keys where key.path.starts(with: path) {
            doomed.insert(integersIn: key.firstLine...key.lastLine)
        }
        // Keep comments and blank lines that separate what follows: only drop the table's own
        // trailing blank lines when the table goes.
        for index in doomed.reversed() { lines.remove(at: index) }
    }

    private func trailingComment(_ value: Substring) -> String? {
        var quote: Character?
        var escaped = false
        for (offset, c) in value.enumerated() {
            if escaped { escaped = false; continue }
            if let q = quote {
                if c == "\\" && q == "\"" { escaped = true } else if c == q { quote = nil }
                continue
            }
            if c == "\"" || c == "'" { quote = c; continue }
            if c == "#" { return String(value.dropFirst(offset)) }
        }
        return nil
    }
}

/// A small ordered set of line numbers.
struct IndexSet {
    private var members = Set<Int>()
    mutating func insert(integersIn range: Range<Int>) { for i in range { members.insert(i) } }
    mutating func insert(integersIn range: ClosedRange<Int>) { for i in range { members.insert(i) } }
    func reversed() -> [Int] { members.sorted(by: >) }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Root-key edits for callers outside this module (the test-only breakage setting).
public struct TOMLEditorAccess {
    private var editor: TOMLEditor
    public init(_ text: String) { editor = TOMLEditor(text) }
    public var text: String { editor.text }
    public mutating func setRoot(_ key: String, _ value: String) { editor.set([key], value) }
}
