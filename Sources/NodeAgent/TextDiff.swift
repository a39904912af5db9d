import Diagnostics

/// A unified diff of two texts (one hunk per run of changes, three lines of context), for
/// `apply --diff`. Managed files are small; past a size where the table would be large, it says
/// only that the files differ. Credentials in the shown lines (config.toml's
/// `registry.configs.*.auth`, header tokens, URL userinfo) are redacted: a diff is printed to a
/// terminal and often pasted.
func unifiedDiff(old: String, new: String, oldName: String, newName: String) -> String {
    let a = old.isEmpty ? [] : old.split(separator: "\n", omittingEmptySubsequences: false).dropLast(old.hasSuffix("\n") ? 1 : 0).map(String.init)
    let b = new.isEmpty ? [] : new.split(separator: "\n", omittingEmptySubsequences: false).dropLast(new.hasSuffix("\n") ? 1 : 0).map(String.init)
    guard a.count * b.count <= 4_000_000 else { return "--- \(oldName)\n+++ \(newName)\n(files differ; too large to show)\n" }
    // Longest common subsequence table, from the end.
    var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
        }
    }
    enum Line { case same(String), removed(String), added(String) }
    var lines: [Line] = []
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            lines.append(.same(a[i])); i += 1; j += 1
        } else if i < a.count, j == b.count || lcs[i + 1][j] >= lcs[i][j + 1] {
            // A changed line shows as its removal, then its addition (as diff(1) prints it).
            lines.append(.removed(a[i])); i += 1
        } else {
            lines.append(.added(b[j])); j += 1
        }
    }
    var out = "--- \(oldName)\n+++ \(newName)\n"
    let context = 3
    var index = 0
    while index < lines.count {
        guard let firstChange = lines[index...].firstIndex(where: { if case .same = $0 { return false } else { return true } }) else { break }
        var start = max(index, firstChange - context)
        var end = firstChange
        // Extend the hunk while changes come within 2*context lines of each other.
        var cursor = firstChange
        while cursor < lines.count {
            if case .same = lines[cursor] {
                let nextChange = lines[cursor...].firstIndex(where: { if case .same = $0 { return false } else { return true } })
                if let nextChange, nextChange - cursor <= context * 2 { cursor = nextChange; continue }
                end = min(lines.count, cursor + context)
                break
            }
            cursor += 1
            end = cursor
        }
        if cursor >= lines.count { end = lines.count }
        start = max(0, start)
        var oldStart = 0, newStart = 0
        for line in lines[..<start] {
            switch line {
            case .same: oldStart += 1; newStart += 1
            case .removed: oldStart += 1
            case .added: newStart += 1
            }
        }
        var oldCount = 0, newCount = 0, body = ""
        for line in lines[start..<end] {
            switch line {
            case .same(let s): body += " \(redacted(s))\n"; oldCount += 1; newCount += 1
            case .removed(let s): body += "-\(redacted(s))\n"; oldCount += 1
            case .added(let s): body += "+\(redacted(s))\n"; newCount += 1
            }
        }
        out += "@@ -\(oldCount == 0 ? oldStart : oldStart + 1),\(oldCount) +\(newCount == 0 ? newStart : newStart + 1),\(newCount) @@\n" + body
        index = end
    }
    return out
}

/// A line of a runtime file as `--diff` shows it: credentials taken out.
func redacted(_ line: String) -> String {
    Quote.redactSecretAssignments(Quote.redactUserinfo(line))
}
