/// Where tables and keys sit in a TOML file, line by line, so that a setting can be reported as
/// `file:line` and changed without touching any other line (comments and order stay).
///
/// It understands what containerd's config files use: `[table]` and `[[array]]` headers with
/// bare, quoted and dotted keys, `key = value` lines with dotted keys, and values that span lines
/// (arrays, inline tables, multi-line strings). Values are not interpreted: a real TOML parser
/// does that; this only finds places.
struct TOMLLayout {
    struct Table {
        var path: [String]
        var isArray: Bool
        /// 0-based line of the header; the table's own lines run to `end` (exclusive).
        var headerLine: Int
        var end: Int
    }

    struct Key {
        /// The full path: table path plus the (possibly dotted) key.
        var path: [String]
        var table: [String]
        /// 0-based first and last line of the key and its value.
        var firstLine: Int
        var lastLine: Int
    }

    var lines: [String]
    var tables: [Table] = []
    var keys: [Key] = []
    /// Lines before the first header hold root keys.
    var rootEnd: Int

    init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        rootEnd = lines.count
        var current: [String] = []
        var index = 0
        while index < lines.count {
            let trimmed = lines[index].drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.hasPrefix("[") {
                let isArray = trimmed.hasPrefix("[[")
                let inner = trimmed.dropFirst(isArray ? 2 : 1)
                let (path, _) = Self.parseKey(inner)
                if let last = tables.indices.last { tables[last].end = index } else { rootEnd = index }
                tables.append(Table(path: path, isArray: isArray, headerLine: index, end: lines.count))
                current = path
                index += 1
                continue
            }
            if trimmed.isEmpty || trimmed.hasPrefix("#") {
                index += 1
                continue
            }
            let (keyPath, rest) = Self.parseKey(trimmed)
            let first = index
            if rest.first == "=" {
                index = Self.endOfValue(lines, startLine: index, value: rest.dropFirst())
            }
            keys.append(Key(path: current + keyPath, table: current, firstLine: first, lastLine: index))
            index += 1
        }
    }

    func key(_ path: [String]) -> Key? { keys.last { $0.path == path } }
    func table(_ path: [String]) -> Table? { tables.first { $0.path == path && !$0.isArray } }

    /// Parses a (dotted, possibly quoted) key; returns its parts and the text after it.
    static func parseKey(_ text: Substring) -> ([String], Substring) {
        var parts: [String] = []
        var rest = text
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard let first = rest.first else { break }
            if first == "\"" || first == "'" {
                var value = ""
                var i = rest.index(after: rest.startIndex)
                while i < rest.endIndex, rest[i] != first {
                    if first == "\"", rest[i] == "\\", rest.index(after: i) < rest.endIndex {
                        i = rest.index(after: i)
                        switch rest[i] {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        default: value.append(rest[i])
                        }
                    } else {
                        value.append(rest[i])
                    }
                    i = rest.index(after: i)
                }
                parts.append(value)
                rest = i < rest.endIndex ? rest[rest.index(after: i)...] : ""
            } else {
                let bare = rest.prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
                if bare.isEmpty { break }
                parts.append(String(bare))
                rest = rest.dropFirst(bare.count)
            }
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            if rest.first == "." { rest = rest.dropFirst() } else { break }
        }
        return (parts, rest)
    }

    /// The last line of a value that starts on `startLine` (arrays, inline tables and
    /// multi-line strings can continue on later lines).
    static func endOfValue(_ lines: [String], startLine: Int, value: Substring) -> Int {
        var depth = 0
        var line = startLine
        var text = value
        var inMultiline: String?
        while true {
            var i = text.startIndex
            while i < text.endIndex {
                let rest = text[i...]
                if let delimiter = inMultiline {
                    if rest.hasPrefix(delimiter) {
                        inMultiline = nil
                        i = text.index(i, offsetBy: 3)
                        continue
                    }
                    if delimiter == "\"\"\"", text[i] == "\\" { i = text.index(after: i) }
                    if i < text.endIndex { i = text.index(after: i) }
                    continue
                }
                if rest.hasPrefix("\"\"\"") || rest.hasPrefix("'''") {
                    inMultiline = String(rest.prefix(3))
                    i = text.index(i, offsetBy: 3)
                    continue
                }
                switch text[i] {
                case "#":
                    i = text.endIndex
                    continue
                case "\"", "'":
                    let quote = text[i]
                    i = text.index(after: i)
                    while i < text.endIndex, text[i] != quote {
                        if quote == "\"", text[i] == "\\" { i = text.index(after: i) }
                        if i < text.endIndex { i = text.index(after: i) }
                    }
                case "[", "{": depth += 1
                case "]", "}": depth -= 1
                default: break
                }
                if i < text.endIndex { i = text.index(after: i) }
            }
            if (depth <= 0 && inMultiline == nil) || line + 1 >= lines.count { return line }
            line += 1
            text = Substring(lines[line])
        }
    }

    /// A header or key part as TOML writes it: bare when it can be, quoted otherwise.
    static func keyText(_ parts: [String]) -> String {
        parts.map { part in
            part.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) && !part.isEmpty
                ? part : TOML.string(part)
        }.joined(separator: ".")
    }
}
