/// How values from input appear in messages: quoted, short, with control characters escaped and
/// credentials taken out. Messages reach terminals, the journal, `STATUS=` and status.json, so a
/// value must never be able to forge a line, carry a secret, or grow a log line without bound.
public enum Quote {
    /// The most characters of one value a message shows.
    public static let maxValueLength = 200
    /// The most characters of a whole message (a safety net: values are already short).
    public static let maxMessageLength = 1000

    /// `"value"`: at most ``maxValueLength`` characters (then `..."` and the full length), control
    /// characters, quotes and backslashes escaped, and URL userinfo (`user:password@`) redacted.
    public static func value(_ text: String, limit: Int = maxValueLength) -> String {
        // Only the start is shown: look at no more than that (plus room for a URL's authority).
        let total = text.unicodeScalars.count
        var window = String.UnicodeScalarView()
        window.append(contentsOf: text.unicodeScalars.prefix(limit + 4096))
        let clean = redactUserinfo(String(window))
        var out = "\""
        var shown = 0
        for scalar in clean.unicodeScalars {
            if shown >= limit {
                return out + "...\" (\(total) characters)"
            }
            out += escape(scalar)
            shown += 1
        }
        return out + "\""
    }

    /// A whole message made safe to print: control characters escaped (a message is one line),
    /// URL userinfo redacted, at most ``maxMessageLength`` characters.
    public static func message(_ text: String) -> String {
        // The common case, checked on bytes: nothing to change.
        if text.utf8.count <= maxMessageLength, !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }), !text.contains("@"),
            !(text.contains("=") || text.contains(":")) || redactSecretAssignments(text) == text {
            return text
        }
        var out = ""
        var count = 0
        for scalar in redactSecretAssignments(redactUserinfo(text)).unicodeScalars {
            if count >= maxMessageLength { return out + "... (message cut)" }
            out += scalar == "\"" || scalar == "\\" ? String(scalar) : escape(scalar)
            count += 1
        }
        return out
    }

    static func escape(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\"": return "\\\""
        case "\\": return "\\\\"
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case _ where scalar.value < 0x20 || scalar.value == 0x7f || (0x80...0x9f).contains(scalar.value)
            || scalar.value == 0x2028 || scalar.value == 0x2029:
            return "\\u{\(String(scalar.value, radix: 16))}"
        default: return String(scalar)
        }
    }

    /// `scheme://user:password@host` -> `scheme://***@host`, anywhere in the text.
    public static func redactUserinfo(_ text: String) -> String {
        guard text.contains("@"), text.contains("://") else { return text }
        var scalars = Array(text.unicodeScalars)
        var i = 0
        while i + 2 < scalars.count {
            guard scalars[i] == ":", scalars[i + 1] == "/", scalars[i + 2] == "/" else { i += 1; continue }
            let start = i + 3
            var end = start
            var at: Int?
            // The authority ends at "/", "?", "#", a quote or white space.
            while end < scalars.count {
                let c = scalars[end]
                if c == "/" || c == "?" || c == "#" || c == "\"" || c == "'" || c == " " || c.value < 0x20 { break }
                if c == "@" { at = end }
                end += 1
            }
            if let at {
                scalars.replaceSubrange(start..<at, with: "***".unicodeScalars)
                i = start + 4
            } else {
                i = end
            }
        }
        var out = ""
        out.unicodeScalars.append(contentsOf: scalars)
        return out
    }

    /// Keys whose values are credentials wherever they appear: containerd's
    /// `registry.configs.*.auth` fields, k3s' auth, HTTP headers that carry tokens.
    public static let secretKeys: Set<String> = [
        "password", "auth", "identitytoken", "identity_token", "token", "registrytoken", "auth_token",
        "authorization", "proxy-authorization", "x-registry-auth",
    ]

    /// Replaces the value of every `key = value` or `key: value` whose key is a credential
    /// (``secretKeys``, any case, quoted or bare) with `"<redacted>"`: for TOML shown as diff
    /// context and for anything else that may echo a line of a runtime's configuration.
    public static func redactSecretAssignments(_ text: String) -> String {
        let lower = text.lowercased()
        guard secretKeys.contains(where: { lower.contains($0) }) else { return text }
        let chars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func isKeyChar(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
        }
        while i < chars.count {
            // A key starts where the previous character is not part of a key.
            guard isKeyChar(chars[i]), i == 0 || !isKeyChar(chars[i - 1]) else {
                out.append(chars[i]); i += 1; continue
            }
            var j = i
            while j < chars.count, isKeyChar(chars[j]) { j += 1 }
            var key = String.UnicodeScalarView(); key.append(contentsOf: chars[i..<j])
            out.append(contentsOf: chars[i..<j])
            i = j
            guard secretKeys.contains(String(key).lowercased()) else { continue }
            // Optional closing quote of a quoted key, spaces, then "=" or ":".
            var k = j
            if k < chars.count, chars[k] == "\"" || chars[k] == "'" { k += 1 }
            while k < chars.count, chars[k] == " " || chars[k] == "\t" { k += 1 }
            guard k < chars.count, chars[k] == "=" || chars[k] == ":" else { continue }
            k += 1
            while k < chars.count, chars[k] == " " || chars[k] == "\t" { k += 1 }
            guard k < chars.count else { continue }
            // The value: a quoted string, or a bare word up to "," "}" or white space.
            var end = k
            if chars[k] == "\"" || chars[k] == "'" {
                let quote = chars[k]
                end = k + 1
                while end < chars.count, chars[end] != quote {
                    if chars[end] == "\\" { end += 1 }
                    end += 1
                }
                end = min(end + 1, chars.count)
            } else if chars[k] == "{" {
                continue  // an inline table: its own keys are looked at one by one
            } else if chars[k] == "[" {
                // A list (header values in hosts.toml): all of it, up to its "]" outside quotes.
                end = k + 1
                var quote: Unicode.Scalar?
                while end < chars.count {
                    let c = chars[end]
                    if let q = quote {
                        if c == "\\" { end += 1 } else if c == q { quote = nil }
                    } else if c == "\"" || c == "'" {
                        quote = c
                    } else if c == "]" {
                        break
                    }
                    end += 1
                }
                end = min(end + 1, chars.count)
                out.append(contentsOf: chars[j..<k])
                out.append(contentsOf: "[\"<redacted>\"]".unicodeScalars)
                i = end
                continue
            } else {
                while end < chars.count, chars[end] != ",", chars[end] != "}", chars[end] != " ", chars[end] != "\t" { end += 1 }
            }
            out.append(contentsOf: chars[j..<k])
            out.append(contentsOf: "\"<redacted>\"".unicodeScalars)
            i = end
        }
        return String(out)
    }
}
