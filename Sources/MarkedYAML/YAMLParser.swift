import CYAML
import Diagnostics

/// Limits that keep hostile input from exhausting the agent.
public struct YAMLLimits: Sendable, Equatable {
    /// Input larger than this is refused before it is parsed.
    public var maxBytes: Int
    /// Nodes in the whole stream, counting every alias as a full copy of what it names: this is
    /// what stops "billion laughs" alias bombs.
    public var maxNodes: Int
    /// Collections nested deeper than this are refused.
    public var maxDepth: Int

    public init(maxBytes: Int = 8 << 20, maxNodes: Int = 1_000_000, maxDepth: Int = 256) {
        self.maxBytes = maxBytes
        self.maxNodes = maxNodes
        self.maxDepth = maxDepth
    }

    public static let standard = YAMLLimits()
}

/// What one parse cost: nodes (aliases in full), bytes of input, bytes of scalar text (aliases
/// in full).
public struct YAMLUsage: Sendable, Equatable {
    public var nodes = 0
    public var bytes = 0
    public var expandedBytes = 0
    public init() {}
}

/// Maps libyaml's positions (0-based, relative to the text parsed) to positions in the file a
/// person edits. YAML embedded in a block scalar (a ConfigMap's `data`) is parsed with an offset
/// so that its errors point into the outer file.
public struct LocationMapping: Sendable, Equatable {
    public var file: String
    public var lineOffset: Int
    public var columnOffset: Int

    public init(file: String, lineOffset: Int = 0, columnOffset: Int = 0) {
        self.file = file
        self.lineOffset = lineOffset
        self.columnOffset = columnOffset
    }

    func location(line: Int, column: Int) -> SourceLocation {
        SourceLocation(file: file, line: line + 1 + lineOffset, column: column + 1 + columnOffset)
    }
}

/// Parses YAML with the system libyaml into marked ``YAMLNode`` trees.
public enum YAMLParser {
    /// Parses a whole stream into its documents.
    ///
    /// Anchors and aliases are resolved (an alias becomes a copy of the node it names, within
    /// ``YAMLLimits/maxNodes``), `<<` merge keys are applied, and duplicate keys are errors.
    /// The text of the scalars, counting every alias in full, is bounded by
    /// ``YAMLLimits/maxBytes`` too: an alias of a large string costs its length, so a short file
    /// cannot make later stages work on gigabytes.
    public static func parse(
        _ bytes: [UInt8], mapping: LocationMapping, limits: YAMLLimits = .standard
    ) throws(Diagnostic) -> [YAMLDocument] {
        var usage = YAMLUsage()
        return try parse(bytes, mapping: mapping, limits: limits, usage: &usage)
    }

    /// ``parse(_:mapping:limits:)``, also telling what the stream cost, so a caller that parses
    /// YAML embedded in it (a ConfigMap's `data`) can charge that to the same budget.
    public static func parse(
        _ bytes: [UInt8], mapping: LocationMapping, limits: YAMLLimits, usage: inout YAMLUsage
    ) throws(Diagnostic) -> [YAMLDocument] {
        defer { usage.bytes = bytes.count }
        if bytes.count > limits.maxBytes {
            throw .error(
                "file is \(bytes.count) bytes, larger than the \(limits.maxBytes)-byte limit; refusing to read it",
                at: mapping.location(line: 0, column: 0))
        }
        var builder = TreeBuilder(mapping: mapping, limits: limits)
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            throw .error("libyaml could not initialize a parser", at: mapping.location(line: 0, column: 0))
        }
        defer { yaml_parser_delete(parser) }

        // libyaml reads the buffer in place: keep it alive and unmoved for the whole parse.
        let result: Result<[YAMLDocument], Diagnostic> = bytes.withUnsafeBufferPointer { buffer in
            // An empty input still needs a valid pointer.
            var empty: UInt8 = 0
            let base = buffer.baseAddress ?? withUnsafePointer(to: &empty) { $0 }
            yaml_parser_set_input_string(parser, base, buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(parser, &event) == 1 else {
                    return .failure(syntaxError(parser.pointee, mapping: mapping))
                }
                defer { yaml_event_delete(&event) }
                do throws(Diagnostic) {
                    if try builder.consume(&event) { break }
                } catch {
                    return .failure(error)
                }
            }
            return .success(builder.documents)
        }
        usage.nodes = builder.nodeCount
        usage.expandedBytes = builder.textBytes
        return try result.get()
    }

    /// Parses a string (convenience for tests and embedded documents).
    public static func parse(
        _ text: String, mapping: LocationMapping, limits: YAMLLimits = .standard
    ) throws(Diagnostic) -> [YAMLDocument] {
        try parse(Array(text.utf8), mapping: mapping, limits: limits)
    }

    private static func syntaxError(_ parser: yaml_parser_t, mapping: LocationMapping) -> Diagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        let mark = parser.problem_mark
        var message = "YAML syntax error: \(problem)"
        if let context = parser.context.map({ String(cString: $0) }) {
            let at = mapping.location(line: Int(parser.context_mark.line), column: Int(parser.context_mark.column))
            message += " (\(context) at line \(at.line), column \(at.column))"
        }
        return .error(message, at: mapping.location(line: Int(mark.line), column: Int(mark.column)))
    }
}

/// Turns libyaml events into nodes. One collection frame per open sequence or mapping.
private struct TreeBuilder {
    struct Frame {
        enum Kind { case sequence, mapping }
        var kind: Kind
        var location: SourceLocation
        var tag: String?
        var anchor: String?
        var nodesBefore: Int
        var bytesBefore: Int
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        /// Where each key of a mapping was first written (duplicate keys are errors).
        var keys: [String: SourceLocation] = [:]
    }

    let mapping: LocationMapping
    let limits: YAMLLimits
    var documents: [YAMLDocument] = []
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, weight: Int, bytes: Int)] = [:]
    var nodeCount = 0
    /// Bytes of scalar text in the tree, an alias counting as a full copy.
    var textBytes = 0
    var documentStart: SourceLocation?
    var documentRoot: YAMLNode?

    init(mapping: LocationMapping, limits: YAMLLimits) {
        self.mapping = mapping
        self.limits = limits
    }

    /// Returns true at the end of the stream.
    mutating func consume(_ event: inout yaml_event_t) throws(Diagnostic) -> Bool {
        let here = mapping.location(line: Int(event.start_mark.line), column: Int(event.start_mark.column))
        switch event.type {
        case YAML_STREAM_START_EVENT:
            return false
        case YAML_STREAM_END_EVENT:
            return true
        case YAML_DOCUMENT_START_EVENT:
            documentStart = here
            documentRoot = nil
            anchors = [:]  // anchors do not cross documents
        case YAML_DOCUMENT_END_EVENT:
            documents.append(
                YAMLDocument(root: documentRoot, location: documentStart ?? here, index: documents.count))
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let text = string(data.value, count: data.length)
            let style: YAMLScalar.Style
            switch data.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            let tag = data.tag.map { String(cString: $0) }
            try count(1, at: here)
            try countText(data.length, at: here)
            let node = YAMLNode(.scalar(YAMLScalar(text, style: style)), at: here, tag: tag)
            if let anchor = data.anchor.map({ String(cString: $0) }) {
                anchors[anchor] = (node, 1, data.length)
            }
            try emit(node)
        case YAML_ALIAS_EVENT:
            let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
            guard let (node, weight, bytes) = anchors[name] else {
                throw .error("alias *\(name.count > 40 ? String(name.prefix(40)) + "..." : name) names no anchor defined before it", at: here)
            }
            // An alias costs as much as the tree it copies: this is what bounds alias bombs.
            try count(weight, at: here)
            try countText(bytes, at: here)
            var copy = node
            copy.location = here
            try emit(copy)
        case YAML_SEQUENCE_START_EVENT:
            let data = event.data.sequence_start
            try open(.sequence, at: here, tag: data.tag, anchor: data.anchor)
        case YAML_MAPPING_START_EVENT:
            let data = event.data.mapping_start
            try open(.mapping, at: here, tag: data.tag, anchor: data.anchor)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = stack.removeLast()
            let node: YAMLNode
            switch frame.kind {
            case .sequence:
                node = YAMLNode(.sequence(frame.items), at: frame.location, tag: frame.tag)
            case .mapping:
                node = YAMLNode(.mapping(try applyMergeKeys(frame.pairs)), at: frame.location, tag: frame.tag)
            }
            if let anchor = frame.anchor {
                anchors[anchor] = (node, nodeCount - frame.nodesBefore, textBytes - frame.bytesBefore)
            }
            try emit(node)
        default:
            break
        }
        return false
    }

    private mutating func open(
        _ kind: Frame.Kind, at location: SourceLocation,
        tag: UnsafeMutablePointer<yaml_char_t>?, anchor: UnsafeMutablePointer<yaml_char_t>?
    ) throws(Diagnostic) {
        if stack.count >= limits.maxDepth {
            throw .error("nested deeper than \(limits.maxDepth) levels; refusing to read further", at: location)
        }
        try count(1, at: location)
        stack.append(
            Frame(
                kind: kind, location: location, tag: tag.map { String(cString: $0) },
                anchor: anchor.map { String(cString: $0) }, nodesBefore: nodeCount - 1, bytesBefore: textBytes))
    }

    private mutating func count(_ n: Int, at location: SourceLocation) throws(Diagnostic) {
        nodeCount += n
        if nodeCount > limits.maxNodes {
            throw .error(
                "document expands to more than \(limits.maxNodes) nodes (aliases count in full); refusing to read further",
                at: location)
        }
    }

    private mutating func countText(_ n: Int, at location: SourceLocation) throws(Diagnostic) {
        textBytes += n
        if textBytes > limits.maxBytes {
            throw .error(
                "document expands to more than \(limits.maxBytes) bytes of text (aliases count in full); refusing to read further",
                at: location)
        }
    }

    private mutating func emit(_ node: YAMLNode) throws(Diagnostic) {
        guard !stack.isEmpty else {
            documentRoot = node
            return
        }
        let top = stack.count - 1
        switch stack[top].kind {
        case .sequence:
            stack[top].items.append(node)
        case .mapping:
            guard let key = stack[top].pendingKey else {
                guard case .scalar(let keyScalar) = node.content else {
                    throw .error("a mapping key must be a plain value, not \(node.kindDescription)", at: node.location)
                }
                if !(keyScalar.text == "<<" && keyScalar.style == .plain) {
                    if let first = stack[top].keys[keyScalar.text] {
                        throw .error("duplicate key \"\(keyScalar.text)\" (first at line \(first.line), column \(first.column))", at: node.location)
                    }
                    stack[top].keys[keyScalar.text] = node.location
                }
                stack[top].pendingKey = node
                return
            }
            stack[top].pairs.append(YAMLPair(key: key, value: node))
            stack[top].pendingKey = nil
        }
    }

    /// `<<: *base` (or a list of them) copies keys the mapping does not set itself.
    private func applyMergeKeys(_ pairs: [YAMLPair]) throws(Diagnostic) -> [YAMLPair] {
        guard pairs.contains(where: { $0.name == "<<" && $0.key.scalar?.style == .plain }) else { return pairs }
        var explicit = pairs.filter { !($0.name == "<<" && $0.key.scalar?.style == .plain) }
        var seen = Set(explicit.map(\.name))
        for pair in pairs where pair.name == "<<" && pair.key.scalar?.style == .plain {
            let sources: [YAMLNode]
            switch pair.value.content {
            case .mapping: sources = [pair.value]
            case .sequence(let items): sources = items
            case .scalar:
                throw .error("a merge key (<<) takes a mapping or a list of mappings", at: pair.value.location)
            }
            for source in sources {
                guard case .mapping(let merged) = source.content else {
                    throw .error("a merge key (<<) takes a mapping or a list of mappings", at: source.location)
                }
                for item in merged where !seen.contains(item.name) {
                    seen.insert(item.name)
                    explicit.append(item)
                }
            }
        }
        return explicit
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, count: Int) -> String {
        guard let pointer, count > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}
