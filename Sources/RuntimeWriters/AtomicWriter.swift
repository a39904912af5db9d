import CLinuxShim
import DesiredState

#if canImport(Glibc)
import Glibc
#endif

/// The one way the agent puts a file on disk.
///
/// Writes go to a temporary file in the same directory, are `fsync`ed, renamed over the target
/// and the directory is `fsync`ed, so a reader sees the old file or the new one, never half of
/// either. Many files are written with one durability step (see ``writeAll(_:)``). Below a file's base directory nothing is followed through a symlink: directories are
/// opened with `O_NOFOLLOW` and the file is read and replaced relative to its directory.
public struct AtomicWriter: Sendable {
    public let root: HostRoot

    public init(root: HostRoot) { self.root = root }

    /// What could not be written, with the errno that said so (ENOSPC, EROFS, EACCES...) when
    /// the kernel refused: the daemon's backoff tells a full disk from a read-only file system.
    public struct WriteError: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var code: Int32? = nil
        public var description: String { "\(path): \(message)" }
    }

    /// What is at a file's place now.
    public enum Existing: Equatable {
        case missing
        case file([UInt8], mode: UInt32)
        /// Something that is not a regular file (a planted symlink, a directory...).
        case notAFile(String)
    }

    static let temporaryMarker = ".mirror-agent-tmp-"

    /// Reads what is at `base/relative` without following symlinks below `base`.
    public func existing(base: String, relative: String) throws(WriteError) -> Existing {
        let (directories, name) = split(relative)
        guard let dir = try openDirectories(base: base, directories, create: false).fd else { return .missing }
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            if errno == ENOENT { return .missing }
            if errno == ELOOP { return .notAFile("a symlink") }
            throw failure(base, relative, "cannot open")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(base, relative, "cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .notAFile("not a regular file") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure(base, relative, "cannot read")
            }
            if n == 0 { break }
            bytes += buffer[..<n]
        }
        return .file(bytes, mode: UInt32(info.st_mode & 0o7777))
    }

    /// One file for ``writeAll(_:)``.
    public struct Write: Sendable {
        public var contents: [UInt8]
        public var base: String
        public var relative: String
        public var mode: UInt32

        public init(_ contents: [UInt8], base: String, relative: String, mode: UInt32) {
            self.contents = contents
            self.base = base
            self.relative = relative
            self.mode = mode
        }
    }

    /// How many files one durability step covers at most: each keeps a file descriptor open
    /// until it is synced, and a service's soft RLIMIT_NOFILE is often 1,024.
    static let batchSize = 256

    /// Up to this many files a batch syncs each file and directory on its own (it touches only
    /// its own data); above it, one `syncfs` per filesystem per step (one journal commit and one
    /// disk-cache flush, where each fsync would flush the cache again).
    static let fsyncLimit = 16

    /// Writes `contents` to `base/relative` atomically. Returns the directories under `base` it
    /// had to create (relative paths), so that they can be removed again with the file.
    @discardableResult
    public func write(_ contents: [UInt8], base: String, relative: String, mode: UInt32) throws(WriteError) -> [String] {
        try writeAll([Write(contents, base: base, relative: relative, mode: mode)])[0].get()
    }

    /// Writes many files atomically with batched durability. For each file the result is the
    /// directories it had to create (as ``write(_:base:relative:mode:)``) or why it failed; a
    /// failed file is left as it was, and the others are still written.
    ///
    /// The guarantee is the one of a single write: after a crash every file is its old version
    /// or its new one, and a temporary file left by the crash is removed by the next write into
    /// its directory. What changes is the cost: instead of an fsync of the file, a rename and an
    /// fsync of the directory per file (three journal commits each on ext4), a batch
    ///
    /// 1. writes every temporary file and starts its writeback at once
    ///    (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the data of the whole batch is in
    ///    flight together;
    /// 2. makes them durable in one step: `syncfs(2)` once per filesystem (one journal commit,
    ///    one disk-cache flush), or, for a batch of at most ``fsyncLimit`` files, an `fsync` of
    ///    each (the first commits the transaction holding them all);
    /// 3. renames them all into place;
    /// 4. makes the renames durable: `syncfs` again, or for a small batch an `fsync` of each
    ///    directory renamed into, once, then of the parent of each directory it created, once.
    ///
    /// Why `syncfs` only for large batches: it also flushes whatever else is dirty on the
    /// filesystem (an image pull containerd is writing to the same disk, for one), so a typical
    /// pass that changes a few files syncs just its own; but each `fsync` ends in a flush of the
    /// disk cache, and thousands of them (2,000 files: 4,000 flushes) cost seconds where two
    /// `syncfs` calls cost two flushes. `syncfs` reports writeback errors since Linux 5.8.
    ///
    /// Why not Bottlerocket's `renameat2(RENAME_EXCHANGE)` of a whole prepared directory: it
    /// swaps a complete tree in one step, so readers even see all files change at once. But the
    /// agent does not own whole directories: `certs.d/` holds hosts.toml files written by hand
    /// or by other tools (left alone unless `adopt`), `registries.conf.d/` holds other drop-ins,
    /// and containerd's `config_path` may be a directory the admin chose. Exchanging a directory
    /// would need a full copy of what others own (racing with their writes) or a symlink the
    /// runtimes would have to follow. Neither containerd nor CRI-O needs a multi-file snapshot
    /// either: both read each host's file on its own (per pull for containerd, per reload for
    /// CRI-O). So the agent keeps per-file renames and batches only their durability.
    public func writeAll(_ writes: [Write]) -> [Result<[String], WriteError>] {
        var results: [Result<[String], WriteError>] = []
        results.reserveCapacity(writes.count)
        var start = 0
        while start < writes.count {
            let end = min(start + Self.batchSize, writes.count)
            results += writeBatch(writes[start..<end])
            start = end
        }
        return results
    }

    private func writeBatch(_ writes: ArraySlice<Write>) -> [Result<[String], WriteError>] {
        struct Item {
            var index: Int
            var directory: String
            var name: String
            var temporary: String
            var fd: Int32
            var created: [String]
        }
        var results = [Result<[String], WriteError>](repeating: .success([]), count: writes.count)
        // Each directory is opened (and cleaned of stale temporaries) once per batch.
        var directories: [String: Int32] = [:]
        var parentsToSync: [String: (base: String, components: [String])] = [:]
        defer { for fd in directories.values { close(fd) } }
        var items: [Item] = []

        // 1. Every temporary file, written and its writeback started.
        for (offset, write) in writes.enumerated() {
            let (components, name) = split(write.relative)
            let key = write.base + "\u{0}" + components.joined(separator: "/")
            let dir: Int32
            var created: [String] = []
            if let known = directories[key] {
                dir = known
            } else {
                do {
                    let (opened, made) = try openDirectories(base: write.base, components, create: true, syncCreated: false)
                    guard let opened else {
                        results[offset] = .failure(WriteError(path: root.path(write.base + "/" + write.relative), message: "cannot create its directory", code: ENOENT))
                        continue
                    }
                    dir = opened
                    created = made
                } catch {
                    results[offset] = .failure(error)
                    continue
                }
                directories[key] = dir
                removeStaleTemporaries(in: dir)
                for directory in created {
                    let (upper, _) = split(directory)
                    parentsToSync[write.base + "\u{0}" + upper.joined(separator: "/")] = (write.base, upper)
                }
            }
            let temporary = "\(Self.temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
            let fd = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(write.mode))
            guard fd >= 0 else {
                results[offset] = .failure(failure(write.base, write.relative, "cannot create a temporary file"))
                continue
            }
            if let problem = fill(fd, with: write.contents, mode: write.mode) {
                results[offset] = .failure(failure(write.base, write.relative, problem))
                close(fd)
                unlinkat(dir, temporary, 0)
                continue
            }
            // Start the writeback now; step 2 waits for all of it at once.
            _ = msa_start_writeback(fd)
            results[offset] = .success(created)
            items.append(Item(index: offset, directory: key, name: name, temporary: temporary, fd: fd, created: created))
        }

        // 2. Durable before any rename: after a crash a renamed file is never empty or partial.
        // A large batch: one syncfs per filesystem (each fsync would still flush the disk cache).
        let large = items.count > Self.fsyncLimit
        var failedFilesystems = Set<dev_t>()
        var filesystems: [dev_t: Int32] = [:]
        if large {
            for item in items {
                var info = stat()
                guard fstat(item.fd, &info) == 0 else { continue }
                if filesystems[info.st_dev] == nil { filesystems[info.st_dev] = item.fd }
            }
            for (device, fd) in filesystems where msa_syncfs(fd) != 0 { failedFilesystems.insert(device) }
        }
        var synced: [Item] = []
        for item in items {
            let write = writes[writes.startIndex + item.index]
            var info = stat()
            let durable: Bool
            if large, fstat(item.fd, &info) == 0, filesystems[info.st_dev] != nil {
                durable = !failedFilesystems.contains(info.st_dev)
            } else {
                durable = fsync(item.fd) == 0
            }
            if !durable {
                results[item.index] = .failure(failure(write.base, write.relative, "cannot sync"))
                close(item.fd)
                unlinkat(directories[item.directory]!, item.temporary, 0)
                continue
            }
            close(item.fd)
            synced.append(item)
        }

        // 3. Into place. rename replaces whatever is at the name (even a symlink) without
        // following it.
        var renamedInto: [String] = []
        var seen = Set<String>()
        for item in synced {
            let write = writes[writes.startIndex + item.index]
            let dir = directories[item.directory]!
            guard renameat(dir, item.temporary, dir, item.name) == 0 else {
                results[item.index] = .failure(failure(write.base, write.relative, "cannot rename into place"))
                unlinkat(dir, item.temporary, 0)
                continue
            }
            if seen.insert(item.directory).inserted { renamedInto.append(item.directory) }
        }

        // 4. Each directory renamed into, once; then the parent of each directory created.
        var unsynced = Set<String>()
        if large {
            // One syncfs per filesystem commits every rename and new directory entry at once.
            var done: [dev_t: Bool] = [:]
            for key in renamedInto {
                var info = stat()
                let fd = directories[key]!
                guard fstat(fd, &info) == 0 else { unsynced.insert(key); continue }
                if done[info.st_dev] == nil { done[info.st_dev] = msa_syncfs(fd) == 0 }
                if done[info.st_dev] == false { unsynced.insert(key) }
            }
            for (key, parent) in parentsToSync {
                let known = directories[key]
                guard let fd = known ?? (try? openDirectories(base: parent.base, parent.components, create: false).fd) else { continue }
                var info = stat()
                if fstat(fd, &info) != 0 || done[info.st_dev] != true { fsync(fd) }
                if known == nil { close(fd) }
            }
        } else {
            for key in renamedInto where fsync(directories[key]!) != 0 { unsynced.insert(key) }
            for (key, parent) in parentsToSync where directories[key] == nil {
                guard let fd = try? openDirectories(base: parent.base, parent.components, create: false).fd else { continue }
                fsync(fd)
                close(fd)
            }
            for (key, fd) in directories where parentsToSync[key] != nil && !seen.contains(key) { fsync(fd) }
        }
        for item in synced where unsynced.contains(item.directory) {
            let write = writes[writes.startIndex + item.index]
            results[item.index] = .failure(failure(write.base, write.relative, "cannot sync its directory"))
        }
        return results
    }

    /// Writes all of `contents` to `fd` and sets its mode exactly; the problem, if any.
    private func fill(_ fd: Int32, with contents: [UInt8], mode: UInt32) -> String? {
        var written = 0
        while written < contents.count {
            let n = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                return "cannot write"
            }
            written += n
        }
        // The umask must not decide the mode: set it exactly.
        guard fchmod(fd, mode_t(mode)) == 0 else { return "cannot set its mode" }
        return nil
    }

    /// Removes `base/relative` (never following a symlink), then those of `directories` (relative
    /// to `base`, deepest first) that are left empty.
    public func remove(base: String, relative: String, directories: [String]) throws(WriteError) {
        let (parents, name) = split(relative)
        guard let dir = try openDirectories(base: base, parents, create: false).fd else { return }
        if unlinkat(dir, name, 0) != 0 && errno != ENOENT {
            let error = failure(base, relative, "cannot remove")
            close(dir)
            throw error
        }
        fsync(dir)
        close(dir)
        for directory in directories.sorted(by: { $0.count > $1.count }) {
            let (upper, last) = split(directory)
            guard let parent = try openDirectories(base: base, upper, create: false).fd else { continue }
            removeStaleTemporaries(in: parent, subdirectory: last)
            if unlinkat(parent, last, AT_REMOVEDIR) == 0 { fsync(parent) }
            close(parent)
        }
    }

    /// A host path as its directory and name: `/etc/x/y.conf` -> (`/etc/x`, `y.conf`).
    public static func split(hostPath: String) -> (directory: String, name: String) {
        guard let slash = hostPath.lastIndex(of: "/") else { return ("/", hostPath) }
        return (slash == hostPath.startIndex ? "/" : String(hostPath[..<slash]), String(hostPath[hostPath.index(after: slash)...]))
    }

    /// ``write(_:base:relative:mode:)`` for a file whose directory is trusted as it is.
    @discardableResult
    public func write(_ contents: [UInt8], hostPath: String, mode: UInt32) throws(WriteError) -> [String] {
        let (directory, name) = Self.split(hostPath: hostPath)
        return try write(contents, base: directory, relative: name, mode: mode)
    }

    // MARK: - Directories

    private func split(_ relative: String) -> ([String], String) {
        let parts = relative.split(separator: "/").map(String.init)
        return (Array(parts.dropLast()), parts.last ?? "")
    }

    /// Opens `base` (created with its parents when asked; existing parents are trusted and
    /// followed), then each of `components` with `O_NOFOLLOW`, creating them when asked.
    /// A directory it creates is made durable in its parent at once unless `syncCreated` is false
    /// (then the caller syncs the parent later, once for many).
    private func openDirectories(base: String, _ components: [String], create: Bool, syncCreated: Bool = true) throws(WriteError) -> (fd: Int32?, created: [String]) {
        let basePath = root.path(base)
        var fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && create {
            try makeDirectories(basePath)
            fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        if fd < 0 {
            if errno == ENOENT { return (nil, []) }
            let code = errno
            throw WriteError(path: basePath, message: "cannot open directory: \(String(cString: strerror(code)))", code: code)
        }
        var created: [String] = []
        var walked: [String] = []
        for component in components {
            walked.append(component)
            var next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, component, 0o755) == 0 {
                    // The umask (the unit's is 0077) must not decide who can read runtime
                    // configuration: rootless podman and skopeo read registries.conf.d.
                    _ = fchmodat(fd, component, 0o755, 0)
                    created.append(walked.joined(separator: "/"))
                    if syncCreated { fsync(fd) }
                } else if errno != EEXIST {
                    let code = errno
                    let error = WriteError(path: basePath + "/" + walked.joined(separator: "/"), message: "cannot create directory: \(String(cString: strerror(code)))", code: code)
                    close(fd)
                    throw error
                }
                next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let code = errno
            close(fd)
            if next < 0 {
                if code == ENOENT { return (nil, created) }
                let path = basePath + "/" + walked.joined(separator: "/")
                if code == ELOOP || code == ENOTDIR {
                    throw WriteError(path: path, message: "is a symlink or not a directory; refusing to write through it", code: code)
                }
                throw WriteError(path: path, message: "cannot open directory: \(String(cString: strerror(code)))", code: code)
            }
            fd = next
        }
        return (fd, created)
    }

    private func makeDirectories(_ path: String) throws(WriteError) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) == 0 {
                _ = chmod(current, 0o755)  // not the umask's choice, as above
            } else if errno != EEXIST {
                let code = errno
                throw WriteError(path: current, message: "cannot create directory: \(String(cString: strerror(code)))", code: code)
            }
        }
    }

    /// Temporary files left by an interrupted write (the process was killed between create and
    /// rename) are removed the next time the directory is written. The writer's pid is in the
    /// name, so a live writer's file is left alone.
    private func removeStaleTemporaries(in dir: Int32, subdirectory: String? = nil) {
        var target = dup(dir)
        if let subdirectory {
            close(target)
            target = openat(dir, subdirectory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard target >= 0, let stream = fdopendir(target) else {
            if target >= 0 { close(target) }
            return
        }
        defer { closedir(stream) }
        var stale: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            // Only a dead writer's leftovers: another live agent process may be mid-write.
            guard name.hasPrefix(Self.temporaryMarker) else { continue }
            let pid = name.dropFirst(Self.temporaryMarker.count).prefix(while: \.isNumber)
            if let pid = pid_t(pid), pid != getpid(), kill(pid, 0) == 0 || errno == EPERM { continue }
            stale.append(name)
        }
        for name in stale { unlinkat(dirfd(stream), name, 0) }
    }

    private func failure(_ base: String, _ relative: String, _ what: String) -> WriteError {
        let code = errno
        return WriteError(path: root.path(base + "/" + relative), message: "\(what): \(String(cString: strerror(code)))", code: code)
    }
}
