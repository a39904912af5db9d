import DesiredState
import Diagnostics
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// The files the agent owns, and how a set of rendered files is put in force.
///
/// Ownership is recorded in a manifest under the state directory. A file the agent did not
/// write is never overwritten unless `adopt` is set (then the original is kept as a backup).
/// A file whose content is already right is not touched, so applying the same desired state
/// twice writes nothing.
public struct ManagedFiles: Sendable {
    public var root: HostRoot
    public var stateDirectory: String
    public var adopt: Bool
    var writer: AtomicWriter { AtomicWriter(root: root) }

    public init(root: HostRoot, stateDirectory: String, adopt: Bool) {
        self.root = root
        self.stateDirectory = stateDirectory
        self.adopt = adopt
    }

    /// What the agent owns, as recorded.
    public struct Manifest: Codable, Equatable, Sendable {
        public struct Entry: Codable, Equatable, Sendable {
            public var base: String
            public var relative: String
            public var runtime: String
            /// Directories under `base` the agent created for this file.
            public var createdDirectories: [String]
            public var path: String { base + "/" + relative }
        }

        public var version = 1
        public var files: [Entry] = []
    }

    public static let manifestName = "manifest.json"
    public static let ownedFilesName = "owned-files"

    /// What applying did (or, for a dry run, would do).
    public struct Outcome: Sendable, Equatable {
        public struct Change: Sendable, Equatable {
            public enum Kind: String, Sendable { case created, updated, adopted, removed }
            public var path: String
            public var kind: Kind
            public var runtime: Runtime
            public var before: String?
            public var after: String?
            public var backup: String?
            /// `before`/`after` hold a secret (a key, credentials, or a file of mode 0600): a
            /// diff must not show them.
            public var secret = false

            public init(path: String, kind: Kind, runtime: Runtime, before: String? = nil, after: String? = nil, backup: String? = nil) {
                self.path = path
                self.kind = kind
                self.runtime = runtime
                self.before = before
                self.after = after
                self.backup = backup
            }
        }

        public var changes: [Change] = []
        public var unchanged: [String] = []
        public var warnings: [Diagnostic] = []
        /// Files that could not be written (the rest were).
        public var failures: [String] = []
        /// The errno behind a failure (by its text), where the kernel gave one.
        public var failureCodes: [String: Int32] = [:]
        /// The failures by the runtime whose file failed (one of the manifest: every runtime
        /// applied), so that a runtime whose files could not be written does not keep another
        /// one's actions back.
        public var runtimeFailures: [Runtime: [String]] = [:]
        public var changed: Bool { !changes.isEmpty }

        mutating func fail(_ error: AtomicWriter.WriteError, prefix: String = "", runtimes: some Sequence<Runtime>) {
            failures.append(prefix + error.description)
            for runtime in runtimes { runtimeFailures[runtime, default: []].append(prefix + error.description) }
            if let code = error.code { failureCodes[prefix + error.description] = code }
        }

        public init() {}
    }

    public func loadManifest() -> (Manifest, Diagnostic?) {
        let path = root.path(stateDirectory + "/" + Self.manifestName)
        switch FileSystem.read(path, limit: 64 << 20) {
        case .failure(.missing): return (Manifest(), nil)
        case .failure(let error): return (Manifest(), .warning("cannot read the ownership manifest (\(error)); files marked as managed are still recognized", at: .file(path)))
        case .success(let bytes):
            if let manifest = Self.lastManifest.decoded(bytes) { return (manifest, nil) }
            if let manifest = try? JSONDecoder().decode(Manifest.self, from: Data(bytes)) {
                Self.lastManifest.remember(bytes, manifest)
                return (manifest, nil)
            }
            return (Manifest(), .warning("the ownership manifest is unreadable; files marked as managed are still recognized", at: .file(path)))
        }
    }

    /// The manifest last read or written by this process, with its exact bytes: a pass reads
    /// the manifest once per runtime (and once more for CRI-O's preview), and decoding 2,000
    /// entries again costs more than comparing the bytes read with the ones remembered.
    final class LastManifest: Sendable {
        private let state = Mutex<(bytes: [UInt8], manifest: Manifest?)>(([], nil))

        func decoded(_ read: [UInt8]) -> Manifest? {
            state.withLock { read == $0.bytes ? $0.manifest : nil }
        }

        func remember(_ bytes: [UInt8], _ manifest: Manifest) {
            state.withLock { $0 = (bytes, manifest) }
        }
    }

    static let lastManifest = LastManifest()

    /// Puts `files` in force for `runtimes`: writes what differs, removes what the agent owned
    /// for those runtimes and no longer renders.
    public func apply(_ files: [RenderedFile], runtimes: Set<Runtime>, dryRun: Bool) -> Outcome {
        var outcome = Outcome()
        var (manifest, manifestWarning) = loadManifest()
        if let manifestWarning { outcome.warnings.append(manifestWarning) }
        let owned = Dictionary(manifest.files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })

        struct Pending { var file: RenderedFile; var change: Outcome.Change }
        var pending: [Pending] = []
        var next: [String: Manifest.Entry] = [:]
        for file in files {
            defer { if file.secret, let index = pending.indices.last, pending[index].file.path == file.path { pending[index].change.secret = true } }
            let entry = owned[file.path] ?? Manifest.Entry(base: file.baseDirectory, relative: file.relativePath, runtime: file.runtime.rawValue, createdDirectories: [])
            let existing: AtomicWriter.Existing
            do {
                existing = try writer.existing(base: file.baseDirectory, relative: file.relativePath)
            } catch {
                outcome.fail(error, runtimes: [file.runtime])
                if owned[file.path] != nil { next[file.path] = entry }
                continue
            }
            let wanted = Array(file.contents.utf8)
            switch existing {
            case .missing:
                pending.append(Pending(file: file, change: .init(path: file.path, kind: .created, runtime: file.runtime, after: file.contents)))
                next[file.path] = entry
            case .file(let bytes, let mode):
                if bytes == wanted && mode == file.mode {
                    outcome.unchanged.append(file.path)
                    next[file.path] = entry
                    continue
                }
                let before = String(decoding: bytes, as: UTF8.self)
                let ours = owned[file.path] != nil || before.hasPrefix(ManagedHeader.marker)
                if ours {
                    pending.append(Pending(file: file, change: .init(path: file.path, kind: .updated, runtime: file.runtime, before: before, after: file.contents)))
                    next[file.path] = entry
                } else if adopt {
                    pending.append(
                        Pending(file: file, change: .init(path: file.path, kind: .adopted, runtime: file.runtime, before: before, after: file.contents, backup: backupPath(for: file.path))))
                    next[file.path] = entry
                } else {
                    outcome.warnings.append(
                        .warning("\(root.path(file.path)) was not written by mirror-agent and is left as it is; set \"adopt: true\" in agent.yaml to take it over (the original is kept as a backup)", at: nil))
                }
            case .notAFile(let what):
                outcome.warnings.append(.warning("\(root.path(file.path)) is \(what); refusing to replace it", at: nil))
                if owned[file.path] != nil { next[file.path] = entry }
            }
        }
        // Owned files of the runtimes in play that are no longer rendered go away.
        var removals: [Manifest.Entry] = []
        for entry in manifest.files where next[entry.path] == nil {
            guard let runtime = Runtime(rawValue: entry.runtime), runtimes.contains(runtime) else {
                next[entry.path] = entry
                continue
            }
            guard case .file(let bytes, let mode)? = try? writer.existing(base: entry.base, relative: entry.relative) else { continue }
            removals.append(entry)
            var change = Outcome.Change(path: entry.path, kind: .removed, runtime: runtime, before: String(decoding: bytes, as: UTF8.self))
            change.secret = (entry.relative.hasSuffix(".key") && mode & 0o077 == 0) || entry.path == CRIOAuthRenderer.authFile
            outcome.changes.append(change)
        }
        outcome.changes.insert(contentsOf: pending.map(\.change), at: 0)
        if dryRun { return outcome }

        // Record the intent first: after a crash, every file the agent may have written is in
        // the manifest, so the next run still knows it as its own.
        // In path order, as the final manifest: when nothing else changes (no directory
        // created, nothing removed), the final one is this one and is not saved again.
        var saved = manifest
        let added = next.filter { owned[$0.key] == nil }
        if !added.isEmpty {
            var intent = manifest
            intent.files = (manifest.files.map { ($0.path, $0) } + added.map { ($0.key, $0.value) }).sorted { $0.0 < $1.0 }.map(\.1)
            if saveManifest(intent, runtimes: runtimes, into: &outcome) { saved = intent }
        }

        // Backups of adopted files first, durable before the originals are replaced.
        var writable: [Pending] = []
        let adoptions = pending.filter { $0.change.kind == .adopted && $0.change.backup != nil && $0.change.before != nil }
        let backups = writer.writeAll(adoptions.map { AtomicWriter.Write(Array($0.change.before!.utf8), base: AtomicWriter.split(hostPath: $0.change.backup!).directory, relative: AtomicWriter.split(hostPath: $0.change.backup!).name, mode: 0o600) })
        var backedUp = Set<String>()
        for (item, result) in zip(adoptions, backups) {
            switch result {
            case .success: backedUp.insert(item.file.path)
            case .failure(let error): fail(item, error)
            }
        }
        for item in pending where item.change.kind != .adopted || backedUp.contains(item.file.path) { writable.append(item) }
        // Every file in one batch: written, made durable together, renamed, directories synced.
        let results = writer.writeAll(writable.map { AtomicWriter.Write(Array($0.file.contents.utf8), base: $0.file.baseDirectory, relative: $0.file.relativePath, mode: $0.file.mode) })
        for (item, result) in zip(writable, results) {
            switch result {
            case .success(let created): if !created.isEmpty { next[item.file.path]?.createdDirectories += created }
            case .failure(let error): fail(item, error)
            }
        }
        func fail(_ item: Pending, _ error: AtomicWriter.WriteError) {
            outcome.fail(error, runtimes: [item.file.runtime])
            outcome.changes.removeAll { $0.path == item.change.path }
            if owned[item.file.path] == nil { next[item.file.path] = nil }
        }
        for entry in removals {
            do {
                try writer.remove(base: entry.base, relative: entry.relative, directories: entry.createdDirectories)
            } catch {
                outcome.fail(error, runtimes: Runtime(rawValue: entry.runtime).map { [$0] } ?? [])
                outcome.changes.removeAll { $0.path == entry.path && $0.kind == .removed }
                next[entry.path] = entry
            }
        }
        var final = Manifest()
        // By key (each entry's path): no path is built per comparison.
        final.files = next.sorted { $0.key < $1.key }.map(\.value)
        if final != saved { _ = saveManifest(final, runtimes: runtimes, into: &outcome) }
        return outcome
    }

    private func saveManifest(_ manifest: Manifest, runtimes: Set<Runtime>, into outcome: inout Outcome) -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(manifest) else { return false }
        data.append(0x0A)
        do {
            // The same list, one path a line, for the package's purge script (no JSON in sh).
            let list = manifest.files.map { $0.path + "\n" }.joined()
            let bytes = Array(data)
            for result in writer.writeAll([
                AtomicWriter.Write(bytes, base: stateDirectory, relative: Self.manifestName, mode: 0o644),
                AtomicWriter.Write(Array(list.utf8), base: stateDirectory, relative: Self.ownedFilesName, mode: 0o644),
            ]) { _ = try result.get() }
            Self.lastManifest.remember(bytes, manifest)
            return true
        } catch {
            outcome.fail(error, prefix: "ownership manifest: ", runtimes: runtimes.sorted { $0.rawValue < $1.rawValue })
            return false
        }
    }

    private func backupPath(for path: String) -> String {
        Self.backupPath(for: path, stateDirectory: stateDirectory, stamp: Self.backupStamp())
    }

    /// Where the original of a replaced file is kept: `<state>/backups/<UTC time><host path>`.
    public static func backupPath(for path: String, stateDirectory: String, stamp: String) -> String {
        stateDirectory + "/backups/" + stamp + path
    }

    /// The UTC time a set of backups is filed under, e.g. `20261122T190344Z`.
    public static func backupStamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y%m%dT%H%M%SZ", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
