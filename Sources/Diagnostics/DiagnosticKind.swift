/// What kind of problem a diagnostic is, in words from a fixed list: the form of a problem that
/// may be shown where the input's values may not (`STATUS=`, which every user sees with
/// `systemctl status`, and status.json). A kind is never built from the message's text, only
/// chosen by it, so no value of any input can reach it.
public enum DiagnosticKind {
    /// The kind of an error or warning message, first match wins. Quoted values (`"..."`, as
    /// ``Quote/value(_:limit:)`` writes them) are taken out before matching, so a value cannot
    /// steer the choice either.
    public static func of(_ message: String, severity: Diagnostic.Severity) -> String {
        let text = withoutQuotedValues(message)
        let table = severity == .error ? errorKinds : warningKinds
        for (needles, kind) in table where needles.contains(where: { text.contains($0) }) { return kind }
        return severity == .error ? "invalid input" : "warning"
    }

    /// Every kind there is (for tests: the public form is one of these).
    public static var all: Set<String> {
        Set(errorKinds.map(\.1) + warningKinds.map(\.1) + ["invalid input", "warning"])
    }

    static let errorKinds: [([String], String)] = [
        (["refusing to trust this file"], "untrusted file"),
        (["not a regular file"], "not a regular file"),
        (["file does not exist"], "missing file"),
        (["cannot read"], "unreadable file"),
        (["larger than the", "expands to more than", "budget"], "too large"),
        (["nested deeper than"], "too deeply nested"),
        (["YAML syntax error", "invalid YAML", "libyaml"], "YAML syntax error"),
        (["invalid TOML", "not valid TOML"], "TOML syntax error"),
        (["duplicate key"], "duplicate key"),
        (["unknown field"], "unknown key"),
        (["unknown kind", "not a desired-state document", "apiVersion", "ConfigMap inside a ConfigMap"], "unknown document kind"),
        (["alias", "merge key", "mapping key must be"], "invalid YAML structure"),
        (["is not a duration"], "invalid duration"),
        (["is out of range", "must be longer than 0", "must be a whole number"], "value out of range"),
        (["(its value is not shown)", "credentials", "auth"], "invalid credentials"),
        (["header"], "invalid header"),
        (["TLS file", "absolute path"], "invalid path"),
        (["different TLS settings"], "conflicting TLS settings"),
        (["conflicting", "contradict", "NeverContactSource"], "conflicting declarations"),
        (["capability"], "invalid capability"),
        (["not a valid registry host", "port \"\"", "IPv6", "host name before", "hex digits"], "invalid host"),
        (["mirror "], "invalid mirror"),
        (["source "], "invalid source"),
        (["runtime", "policy", "onUnhealthy", "dropIn"], "invalid setting"),
        (["agent.yaml must hold one document"], "invalid agent.yaml"),
        (["must be", "expected", "found", "needs a", "holds no"], "wrong type"),
    ]

    static let warningKinds: [([String], String)] = [
        (["insecure = true"], "skip-verify also allows plain HTTP in CRI-O"),
        (["TLS file"], "TLS file missing"),
        (["holds no documents"], "empty ConfigMap data"),
        (["are not written by this version"], "credentials not written"),
        (["skipped for"], "mirror skipped for a runtime"),
        (["listed twice"], "duplicate mirror"),
        (["contradict"], "conflicting mirror orders"),
        (["not in the CRI-O drop-in"], "headers not expressible in CRI-O"),
        (["rewrite"], "rewrite not expressible"),
        (["ignored"], "declaration ignored"),
        (["tag pulls only"], "tag-only not expressible in containerd"),
        (["_default"], "default mirrors do not apply"),
        (["drop-in replaces"], "CRI-O prefix replaced"),
        (["dial_timeout"], "setting not supported by containerd"),
        (["config_path"], "containerd config_path"),
        (["ownership manifest"], "ownership manifest unreadable"),
        (["unknown field"], "unknown key"),
    ]

    /// The message with every `"..."` (escapes inside honored) replaced by `""`.
    static func withoutQuotedValues(_ message: String) -> String {
        var out = String.UnicodeScalarView()
        var inQuote = false
        var escaped = false
        for scalar in message.unicodeScalars {
            if inQuote {
                if escaped { escaped = false } else if scalar == "\\" { escaped = true } else if scalar == "\"" { inQuote = false; out.append(scalar) }
            } else {
                out.append(scalar)
                if scalar == "\"" { inQuote = true }
            }
        }
        return String(out)
    }
}

extension Diagnostic {
    /// ``DiagnosticKind/of(_:severity:)`` of this message.
    public var kind: String { DiagnosticKind.of(message, severity: severity) }

    /// `path:line:column: kind` (`path:line:column: warning: kind`): what `STATUS=` and
    /// status.json say of it. No value of any input, only its place.
    public var publicDescription: String {
        let prefix = location.map { "\(Quote.message($0.description)): " } ?? ""
        switch severity {
        case .error: return prefix + kind
        case .warning: return prefix + "warning: " + kind
        }
    }
}
