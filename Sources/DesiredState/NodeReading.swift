import Diagnostics
import MarkedYAML

// Typed reads from marked YAML nodes. Every failure names the node's place and what was expected.

extension YAMLNode {
    func string(_ what: String) throws(Diagnostic) -> String {
        guard case .scalar(let s) = content, !isNull else {
            throw .error("\(what) must be a string, found \(kindDescription)", at: location)
        }
        return s.text
    }

    func bool(_ what: String) throws(Diagnostic) -> Bool {
        if case .scalar(let s) = content, s.style == .plain || tag == "tag:yaml.org,2002:bool" {
            switch s.text {
            case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return true
            case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return false
            default: break
            }
        }
        throw .error("\(what) must be true or false, found \(kindDescription)", at: location)
    }

    func list(_ what: String) throws(Diagnostic) -> [YAMLNode] {
        guard case .sequence(let items) = content else {
            throw .error("\(what) must be a list, found \(kindDescription)", at: location)
        }
        return items
    }

    func pairs(_ what: String) throws(Diagnostic) -> [YAMLPair] {
        guard case .mapping(let pairs) = content else {
            throw .error("\(what) must be a mapping, found \(kindDescription)", at: location)
        }
        return pairs
    }

    /// A string, or a list of strings (the form several runtimes accept for `ca`, headers...).
    func stringOrList(_ what: String) throws(Diagnostic) -> [String] {
        if case .sequence(let items) = content {
            var result: [String] = []
            for item in items { result.append(try item.string("each entry of \(what)")) }
            return result
        }
        return [try string(what)]
    }
}

/// Reads the fields of one YAML mapping and reports the keys nobody asked for.
struct FieldReader {
    let node: YAMLNode
    let what: String
    let pairs: [YAMLPair]

    init(_ node: YAMLNode, _ what: String) throws(Diagnostic) {
        self.node = node
        self.what = what
        self.pairs = try node.pairs(what)
    }

    /// The value of `key`, or nil when absent or null.
    func value(_ key: String) -> YAMLNode? {
        guard let pair = pairs.first(where: { $0.name == key }), !pair.value.isNull else { return nil }
        return pair.value
    }

    func has(_ key: String) -> Bool { pairs.contains { $0.name == key } }

    func string(_ key: String) throws(Diagnostic) -> String? {
        try value(key)?.string("\(what).\(key)")
    }

    func required(_ key: String) throws(Diagnostic) -> YAMLNode {
        guard let value = value(key) else {
            throw .error("\(what) needs a \"\(key)\" field", at: node.location)
        }
        return value
    }

    func bool(_ key: String) throws(Diagnostic) -> Bool? {
        try value(key)?.bool("\(what).\(key)")
    }

    /// Reports every key not in `known`, with a suggestion when one is close.
    func reportUnknown(_ known: [String], into diagnostics: inout DiagnosticList, ignoring: [String] = []) {
        for pair in pairs where !known.contains(pair.name) && !ignoring.contains(pair.name) {
            var message = "unknown field \(Quote.value(pair.name)) in \(what)"
            if let suggestion = closestMatch(to: pair.name, in: known) {
                message += "; did you mean \"\(suggestion)\"?"
            } else {
                message += " (known: \(known.joined(separator: ", ")))"
            }
            diagnostics.error(message, at: pair.key.location)
        }
    }
}
