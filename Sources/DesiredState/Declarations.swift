import Diagnostics
import MarkedYAML

/// One registry entry as one document declared it, before merging.
struct RegistryDeclaration: Sendable {
    var source: RegistrySource
    var location: SourceLocation
    /// nil when the document did not say (which means AllowContactingSource).
    var policy: SourcePolicy?
    var policyLocation: SourceLocation?
    var mirrors: [MirrorEndpoint]
    var sourceTLS: TLSSettings = TLSSettings()
    var rewrites: [RewriteRule] = []
    /// OpenShift ignores a set whose only mirror is its source.
    var isOpenShift: Bool = false
}

/// What decoding the documents produced.
struct DecodedDocuments {
    var declarations: [RegistryDeclaration] = []
    var credentials: [HostCredentials] = []
    /// MirrorSet credentials, resolved (their files read) once every document is decoded.
    var credentialSpecs: [CredentialSpec] = []
    var diagnostics = DiagnosticList()
    /// `insecureRegistries` from agent.yaml: decides how each source itself is reached.
    var insecureRegistries: Set<String> = []
}

/// Facts the dialect decoders need besides the YAML itself.
struct DecodingContext {
    var insecureRegistries: Set<String>
    /// The lines of the file being decoded, to place YAML embedded in a ConfigMap exactly.
    var lines: [Substring]
    var limits: YAMLLimits
    /// What embedded documents (ConfigMap `data`) may still cost: they count against the outer
    /// file's size and node budgets, shared by every nested decode of the file.
    var budget: EmbeddedBudget
}

/// The part of a file's ``YAMLLimits`` its embedded documents have not used yet.
final class EmbeddedBudget {
    var bytes: Int
    var nodes: Int
    init(limits: YAMLLimits, used: YAMLUsage) {
        bytes = limits.maxBytes - max(used.bytes, used.expandedBytes)
        nodes = limits.maxNodes - used.nodes
    }
}

/// The dialects, recognized per document.
enum Dialect {
    static let kinds = [
        "MirrorSet", "ImageDigestMirrorSet", "ImageTagMirrorSet", "ImageContentSourcePolicy", "ConfigMap", "List",
    ]

    static func decode(_ document: YAMLDocument, context: DecodingContext, nested: Bool = false, into result: inout DecodedDocuments) {
        guard let root = document.root, !root.isNull else { return }  // an empty document is fine
        do {
            let fields = try FieldReader(root, "the document")
            guard let kindNode = fields.value("kind") else {
                if fields.has("mirrors") || fields.has("configs") {
                    K3sRegistriesDialect.decode(fields, context: context, into: &result)
                    return
                }
                throw Diagnostic.error(
                    "not a desired-state document: expected \"kind:\" (\(kinds.dropLast().joined(separator: ", "))) or a k3s registries.yaml with \"mirrors:\" or \"configs:\"",
                    at: root.location)
            }
            let kind = try kindNode.string("kind")
            switch kind {
            case "MirrorSet":
                try checkAPIVersion(fields, ["mirror-agent/v1"], kind: kind)
                MirrorSetDialect.decode(fields, context: context, into: &result)
            case "ImageDigestMirrorSet", "ImageTagMirrorSet":
                try checkAPIVersion(fields, ["config.openshift.io/v1"], kind: kind)
                OpenShiftDialect.decode(fields, kind: kind, context: context, into: &result)
            case "ImageContentSourcePolicy":
                try checkAPIVersion(fields, ["operator.openshift.io/v1alpha1"], kind: kind)
                OpenShiftDialect.decode(fields, kind: kind, context: context, into: &result)
            case "ConfigMap":
                guard !nested else { throw Diagnostic.error("a ConfigMap inside a ConfigMap is not accepted", at: kindNode.location) }
                try checkAPIVersion(fields, ["v1"], kind: kind)
                try ConfigMapDialect.decode(fields, context: context, into: &result)
            case _ where kind.hasSuffix("List") && !nested:
                // `kubectl get ... -o yaml` wraps objects in a List.
                fields.reportUnknown(["apiVersion", "kind", "items", "metadata"], into: &result.diagnostics)
                for item in try fields.value("items")?.list("items") ?? [] {
                    decode(YAMLDocument(root: item, location: item.location, index: document.index), context: context, nested: true, into: &result)
                }
            default:
                var message = "unknown kind \(Quote.value(kind))"
                if let suggestion = closestMatch(to: kind, in: kinds) { message += "; did you mean \"\(suggestion)\"?" }
                else { message += " (accepted: \(kinds.joined(separator: ", ")), or a k3s registries.yaml)" }
                throw Diagnostic.error(message, at: kindNode.location)
            }
        } catch {
            result.diagnostics.append(error)
        }
    }

    static func checkAPIVersion(_ fields: FieldReader, _ accepted: [String], kind: String) throws(Diagnostic) {
        guard let node = fields.value("apiVersion") else {
            throw .error("\(kind) needs \"apiVersion: \(accepted[0])\"", at: fields.node.location)
        }
        let version = try node.string("apiVersion")
        guard accepted.contains(version) else {
            throw .error("\(kind) has apiVersion \(Quote.value(version)); expected \"\(accepted.joined(separator: "\" or \""))\"", at: node.location)
        }
    }

    /// Kubernetes objects exported from a cluster carry these; they mean nothing here.
    static let objectKeys = ["apiVersion", "kind", "metadata", "status"]

    static func policy(_ node: YAMLNode?) throws(Diagnostic) -> (SourcePolicy, SourceLocation)? {
        guard let node else { return nil }
        let text = try node.string("mirrorSourcePolicy")
        guard let policy = SourcePolicy(rawValue: text) else {
            var message = "mirrorSourcePolicy \(Quote.value(text)) is not AllowContactingSource or NeverContactSource"
            if let s = closestMatch(to: text, in: ["AllowContactingSource", "NeverContactSource"]) {
                message += "; did you mean \"\(s)\"?"
            }
            throw .error(message, at: node.location)
        }
        return (policy, node.location)
    }
}

/// A ConfigMap whose `data` values are desired-state documents (how fleet tooling and HyperShift
/// carry them).
enum ConfigMapDialect {
    static func decode(_ fields: FieldReader, context: DecodingContext, into result: inout DecodedDocuments) throws(Diagnostic) {
        fields.reportUnknown(Dialect.objectKeys + ["data", "binaryData", "immutable"], into: &result.diagnostics)
        guard let data = fields.value("data") else {
            throw .error("ConfigMap has no \"data\" with mirror sets in it", at: fields.node.location)
        }
        for pair in try data.pairs("data") {
            let text = try pair.value.string("data.\(pair.name)")
            let mapping = embeddedMapping(of: pair.value, context: context)
            let budget = context.budget
            let size = text.utf8.count
            guard size <= budget.bytes, budget.nodes > 0 else {
                throw .error(
                    "data.\(pair.name): the documents embedded in this file exceed its \(context.limits.maxBytes)-byte / \(context.limits.maxNodes)-node budget (ConfigMap data counts against the file's limits); refusing to read further",
                    at: pair.value.location)
            }
            do {
                var usage = YAMLUsage()
                var innerLimits = context.limits
                innerLimits.maxBytes = budget.bytes
                innerLimits.maxNodes = budget.nodes
                defer {
                    budget.bytes -= max(size, usage.expandedBytes)
                    budget.nodes -= usage.nodes
                }
                let documents = try YAMLParser.parse(Array(text.utf8), mapping: mapping, limits: innerLimits, usage: &usage)
                var inner = context
                inner.lines = []
                if documents.allSatisfy({ $0.root == nil || $0.root!.isNull }) {
                    result.diagnostics.warning("data.\(pair.name) holds no documents", at: pair.key.location)
                }
                for document in documents {
                    Dialect.decode(document, context: inner, nested: true, into: &result)
                }
            } catch let error as Diagnostic where error.message.hasPrefix("document expands to more than") {
                // The inner parse ran out of what the outer file left: say so in its terms.
                throw .error(
                    "data.\(pair.name): the documents embedded in this file exceed its \(context.limits.maxBytes)-byte / \(context.limits.maxNodes)-node budget (ConfigMap data counts against the file's limits, aliases in full); refusing to read further",
                    at: error.location ?? pair.value.location)
            } catch {
                result.diagnostics.append(error)
            }
        }
    }

    /// Where the embedded text sits in the outer file: for a literal block (`|`) every line maps
    /// exactly, shifted by the block's indentation; for other styles errors point at the value.
    static func embeddedMapping(of node: YAMLNode, context: DecodingContext) -> LocationMapping {
        let line = node.location.line
        if node.scalar?.style == .literal, line < context.lines.count {
            let following = context.lines[line...]
            if let first = following.first(where: { !$0.allSatisfy { $0 == " " || $0 == "\t" } }) {
                let indent = first.prefix(while: { $0 == " " }).count
                return LocationMapping(file: node.location.file, lineOffset: line, columnOffset: indent)
            }
        }
        return LocationMapping(file: node.location.file, lineOffset: line - 1, columnOffset: node.location.column - 1)
    }
}
