import CSystemdShim

#if canImport(Glibc)
import Glibc
#endif

/// The systemd journal: entries with structured fields, and searching a unit's entries.
public enum Journal {
    /// Sends one entry. `fields` are journal field names (upper case) and values.
    @discardableResult
    public static func send(message: String, priority: Int, fields: [(String, String)]) -> Bool {
        var entries = ["MESSAGE=\(message)", "PRIORITY=\(priority)"] + fields.map { "\($0.0)=\($0.1)" }
        if entries.count > 64 { entries = Array(entries.prefix(64)) }
        var pointers = entries.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                msa_journal_send($0, Int32(buffer.count)) >= 0
            }
        }
    }

    /// Index of the first needle found in `unit`'s messages since `since` (µs, realtime), or nil.
    public static func find(unit: String, since: UInt64, _ needles: [String]) -> Int? {
        var pointers = needles.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let found = pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                msa_journal_find(unit, since, $0, Int32(buffer.count))
            }
        }
        return found >= 0 ? Int(found) : nil
    }

    public static func realtimeMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}
