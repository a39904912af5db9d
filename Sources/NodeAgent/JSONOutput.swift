import DesiredState
import Diagnostics
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one JSON style of the command line and the status file: sorted keys, ISO 8601 dates.
func jsonEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return encoder
}

func printJSON<T: Encodable>(_ value: T) {
    let data = (try? jsonEncoder().encode(value)) ?? Data("{}".utf8)
    print(String(decoding: data, as: UTF8.self))
}

/// A diagnostic as fleet tooling reads it.
struct DiagnosticJSON: Encodable {
    var file: String?
    var line: Int?
    var column: Int?
    var message: String
    var text: String
    /// The kind of problem, from a fixed list ("invalid duration", "unknown key", ...).
    var kind: String

    init(_ d: Diagnostic) {
        kind = d.kind
        file = d.location?.file
        line = d.location?.line
        column = d.location?.column
        message = d.message
        text = d.description
    }
}

/// The normalized model as JSON: what every dialect turned into. Credentials never appear.
struct RegistryJSON: Encodable {
    struct Mirror: Encodable {
        var url: String
        var overridePath: Bool
        var capabilities: [String]
        var pullFrom: String
        var ca: [String]
        var clientCertificate: String?
        var clientKey: String?
        var insecureSkipVerify: Bool
        var headers: [String: [String]]
        var origins: [String]
    }

    var source: String
    var mirrorSourcePolicy: String
    var mirrors: [Mirror]
    var rewrites: [String: String]
    var origins: [String]

    init(_ r: Registry) {
        source = r.source.description
        mirrorSourcePolicy = r.sourcePolicy.rawValue
        rewrites = Dictionary(r.rewrites.map { ($0.pattern, $0.replacement) }, uniquingKeysWith: { a, _ in a })
        origins = r.origins.map(\.fileAndLine)
        mirrors = r.mirrors.map { m in
            Mirror(
                url: m.displayURL, overridePath: m.overridePath, capabilities: m.capabilities.map(\.rawValue),
                pullFrom: m.pullFrom.rawValue, ca: m.tls.caFiles, clientCertificate: m.tls.clientCertificate,
                clientKey: m.tls.clientKey, insecureSkipVerify: m.tls.skipVerify,
                headers: Dictionary(m.headers.map { ($0.name, $0.values) }, uniquingKeysWith: { a, _ in a }),
                origins: m.origins.map(\.fileAndLine))
        }
    }
}

struct ValidationReport: Encodable {
    var valid: Bool
    var files: [String]
    var registries: [RegistryJSON]
    var errors: [DiagnosticJSON]
    var warnings: [DiagnosticJSON]

    init(_ result: DesiredStateLoader.Result) {
        valid = result.isValid
        files = result.files
        registries = result.model.registries.map(RegistryJSON.init)
        errors = result.diagnostics.sorted.filter { $0.severity == .error }.map(DiagnosticJSON.init)
        warnings = result.diagnostics.sorted.filter { $0.severity == .warning }.map(DiagnosticJSON.init)
    }
}
