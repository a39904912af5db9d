import Diagnostics

/// A YAML node that remembers where it was written.
///
/// The tree is built from libyaml's event stream by ``YAMLParser``; every node, key and value
/// carries its ``SourceLocation`` so that any later error can name `path:line:column`.
public struct YAMLNode: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case scalar(YAMLScalar)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var location: SourceLocation
    /// An explicit tag (`!!str`, `!custom`), if the author wrote one.
    public var tag: String?

    public init(_ content: Content, at location: SourceLocation, tag: String? = nil) {
        self.content = content
        self.location = location
        self.tag = tag
    }

    /// The scalar, if this node is one.
    public var scalar: YAMLScalar? {
        if case .scalar(let s) = content { return s }
        return nil
    }

    /// A scalar that reads as YAML null (`~`, `null`, or nothing at all) and was not quoted.
    public var isNull: Bool {
        if tag == "tag:yaml.org,2002:null" { return true }
        guard let s = scalar, s.style == .plain, tag == nil else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.text)
    }

    /// How the node reads in an error message: "a mapping", "a list", "the string \"x\"".
    public var kindDescription: String {
        switch content {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s):
            if isNull { return "nothing (null)" }
            return "the value \(Quote.value(s.text, limit: 40))"
        }
    }
}

/// A key and its value in a mapping, in the order written.
public struct YAMLPair: Sendable, Equatable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }

    /// The key's text (keys are always scalars: the parser rejects anything else).
    public var name: String { key.scalar?.text ?? "" }
}

/// A scalar's text and how it was written (plain scalars are the only ones that can be numbers,
/// booleans or null).
public struct YAMLScalar: Sendable, Equatable {
    public enum Style: Sendable, Equatable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public var text: String
    public var style: Style

    public init(_ text: String, style: Style = .plain) {
        self.text = text
        self.style = style
    }
}

/// One document of a (possibly multi-document) YAML stream.
public struct YAMLDocument: Sendable, Equatable {
    /// The root node; `nil` for an empty document (`---` with nothing after it).
    public var root: YAMLNode?
    /// Where the document starts.
    public var location: SourceLocation
    /// 0-based position in the stream.
    public var index: Int

    public init(root: YAMLNode?, location: SourceLocation, index: Int) {
        self.root = root
        self.location = location
        self.index = index
    }
}
