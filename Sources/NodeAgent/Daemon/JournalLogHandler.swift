#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import RuntimeActions

/// A swift-log backend for the systemd journal: priority from the log level, `MESSAGE`,
/// `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, and every metadata key as a field of our own
/// (`registry` -> `MIRROR_AGENT_REGISTRY`), so `journalctl -u mirror-agent
/// MIRROR_AGENT_REGISTRY=docker.io` finds what concerns that registry.
struct JournalLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("CODE_FILE", event.file), ("CODE_LINE", String(event.line)), ("CODE_FUNC", event.function),
            ("SYSLOG_IDENTIFIER", "mirror-agent"),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            fields.append((Self.fieldName(key), "\(value)"))
        }
        Journal.send(message: event.message.description, priority: Self.priority(event.level), fields: fields)
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// `registry` -> `MIRROR_AGENT_REGISTRY`; journal field names are upper case letters,
    /// digits and underscores.
    static func fieldName(_ key: String) -> String {
        "MIRROR_AGENT_" + String(key.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// Under systemd (stderr connected to the journal), log to the journal; elsewhere to stderr.
    static var isUnderJournal: Bool { ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil }

    static func bootstrap(level: Logger.Level = .info) {
        let journal = isUnderJournal
        LoggingSystem.bootstrap { label in
            if journal {
                var handler = JournalLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
