#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Small text helpers in plain Swift and libc, so that no module needs full Foundation (and with it
// ICU) for `trimmingCharacters(in:)` or `String(format:)`.

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (what Foundation's
    /// `.whitespaces` set is for ASCII input), or any Unicode whitespace with `newlines: true`.
    public func trimmingWhitespace(newlines: Bool = false) -> String {
        let drop: (Character) -> Bool = { newlines ? $0.isWhitespace : ($0.isWhitespace && !$0.isNewline) }
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// One `Double` formatted by the C library's printf (`"%.1f"`, `"%.0fms"`...): the same digits and
/// rounding `String(format:)` gives, without Foundation.
public func formatDouble(_ format: String, _ value: Double) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let count = withVaList([value]) { args in
        buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, args) }
    }
    if count >= 64 {
        buffer = [CChar](repeating: 0, count: Int(count) + 1)
        _ = withVaList([value]) { args in buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, format, args) } }
    }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
