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

    /// How many directories a large write keeps open at most (a service's soft RLIMIT_NOFILE
    /// is often 1,024); more are closed and opened again when needed. Temporary files are not
    /// kept open: `syncfs` needs no descriptor of them.
    static let batchSize = 256

    /// Up to this many files a write syncs each file and directory on its own (it touches only
    /// its own data); above it, one `syncfs` per filesystem per step for all the files (one
    /// journal commit and one disk-cache flush, where each fsync would flush the cache again).
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
    /// fsync of the directory per file (three journal commits each on ext4), the call
    ///
    /// 1. writes every temporary file (creating missing directories); for at most
    ///    ``fsyncLimit`` files it starts each one's writeback at once
    ///    (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so their data is in flight together
    ///    (for more, `syncfs` writes them all back in one go);
    /// 2. makes them durable in one step: `syncfs(2)` once per filesystem (one journal commit,
    ///    one disk-cache flush for the data, the inodes and the new directories' entries), or,
    ///    for at most ``fsyncLimit`` files, an `fsync` of each (the first commits the
    ///    transaction holding them all);
    /// 3. renames them all into place;
    /// 4. makes the renames durable: `syncfs` again, or for a few files an `fsync` of each
    ///    directory renamed into, once, then of the parent of each directory it created, once.
    ///
    /// However many files there are, a large write costs two `syncfs` per filesystem: the
    /// temporaries are closed once written and at most ``batchSize`` directories are open at a
    /// time (the rename goes through the descriptor its temporary was made in; a directory
    /// closed because more were needed is opened again, without following symlinks).
    ///
    /// Why `syncfs` only for large writes: it also flushes whatever else is dirty on the
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
        writes.count > Self.fsyncLimit ? writeLarge(writes) : writeSmall(writes)
    }

    /// A few files: each file and each directory synced on its own.
    private func writeSmall(_ writes: [Write]) -> [Result<[String], WriteError>] {
        struct Item {
            var index: Int
            var directory: String
            var name: String
            var temporary: String
            var fd: Int32
        }
        var results = [Result<[String], WriteError>](repeating: .success([]), count: writes.count)
        // Each directory is opened (and cleaned of stale temporaries) once.
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
            let fd: Int32, temporary: String
            switch writeTemporary(write, name: name, in: dir) {
            case .success(let written): (fd, temporary) = written
            case .failure(let error):
                results[offset] = .failure(error)
                continue
            }
            // Start the writeback now; step 2 waits for all of it.
            _ = msa_start_writeback(fd)
            results[offset] = .success(created)
            items.append(Item(index: offset, directory: key, name: name, temporary: temporary, fd: fd))
        }

        // 2. Durable before any rename: after a crash a renamed file is never empty or partial.
        var synced: [Item] = []
        for item in items {
            let write = writes[item.index]
            guard fsync(item.fd) == 0 else {
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
            let write = writes[item.index]
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
        for key in renamedInto where fsync(directories[key]!) != 0 { unsynced.insert(key) }
        for (key, parent) in parentsToSync where directories[key] == nil {
            guard let fd = try? openDirectories(base: parent.base, parent.components, create: false).fd else { continue }
            fsync(fd)
            close(fd)
        }
        for (key, fd) in directories where parentsToSync[key] != nil && !seen.contains(key) { fsync(fd) }
        for item in synced where unsynced.contains(item.directory) {
            let write = writes[item.index]
            results[item.index] = .failure(failure(write.base, write.relative, "cannot sync its directory"))
        }
        return results
    }

    /// Many files: one `syncfs` per filesystem before the renames and one after, for all of them.
    private func writeLarge(_ writes: [Write]) -> [Result<[String], WriteError>] {
        struct Item {
            var index: Int
            var key: String
            var components: [String]
            var name: String
            var temporary: String
            var device: dev_t
        }
        var results = [Result<[String], WriteError>](repeating: .success([]), count: writes.count)
        var open = OpenDirectories(writer: self)
        defer { open.closeAll() }
        // One open directory per filesystem, for syncfs.
        var filesystems: [dev_t: Int32] = [:]
        defer { for fd in filesystems.values { close(fd) } }
        var cleaned = Set<String>()
        var items: [Item] = []
        items.reserveCapacity(writes.count)

        // 1. Every temporary file, written and closed.
        for (index, write) in writes.enumerated() {
            let (components, name) = split(write.relative)
            let key = write.base + "\u{0}" + components.joined(separator: "/")
            let directory: OpenDirectories.Directory
            do {
                guard let opened = try open.directory(base: write.base, components, key: key, create: true) else {
                    results[index] = .failure(WriteError(path: root.path(write.base + "/" + write.relative), message: "cannot create its directory", code: ENOENT))
                    continue
                }
                directory = opened
            } catch {
                results[index] = .failure(error)
                continue
            }
            if cleaned.insert(key).inserted {
                // A directory made just now holds no leftovers of an earlier run.
                if directory.created.last != components.joined(separator: "/") || components.isEmpty { removeStaleTemporaries(in: directory.fd) }
                if filesystems[directory.device] == nil { filesystems[directory.device] = fcntl(directory.fd, F_DUPFD_CLOEXEC, 0) }
            }
            let fd: Int32, temporary: String
            switch writeTemporary(write, name: name, in: directory.fd) {
            case .success(let written): (fd, temporary) = written
            case .failure(let error):
                results[index] = .failure(error)
                continue
            }
            // No sync_file_range here: syncfs writes back every file at once, in the kernel's
            // flusher threads (starting each file's writeback from this thread cost more CPU
            // than it overlapped).
            close(fd)
            results[index] = .success(directory.created)
            items.append(Item(index: index, key: key, components: components, name: name, temporary: temporary, device: directory.device))
        }

        // 2. Durable before any rename (data, inodes and new directories): one syncfs per
        // filesystem. After a crash a renamed file is never empty or partial.
        var syncErrors: [dev_t: Int32] = [:]
        for (device, fd) in filesystems {
            let result = fd < 0 ? -EBADF : msa_syncfs(fd)
            if result != 0 { syncErrors[device] = -result }
        }

        // 3. Into place. rename replaces whatever is at the name (even a symlink) without
        // following it.
        var renamed: [Item] = []
        for item in items {
            let write = writes[item.index]
            // The descriptor the temporary was made in, if still open; else opened again as for
            // the temporary, so a directory swapped for a symlink meanwhile is refused.
            let reopened: OpenDirectories.Directory?
            do {
                reopened = try open.directory(base: write.base, item.components, key: item.key, create: false)
            } catch {
                results[item.index] = .failure(error)
                continue
            }
            guard let directory = reopened else {
                results[item.index] = .failure(WriteError(path: root.path(write.base + "/" + write.relative), message: "cannot rename into place: its directory is gone", code: ENOENT))
                continue
            }
            if let code = syncErrors[item.device] {
                results[item.index] = .failure(WriteError(path: root.path(write.base + "/" + write.relative), message: "cannot sync: \(String(cString: strerror(code)))", code: code))
                unlinkat(directory.fd, item.temporary, 0)
                continue
            }
            guard renameat(directory.fd, item.temporary, directory.fd, item.name) == 0 else {
                results[item.index] = .failure(failure(write.base, write.relative, "cannot rename into place"))
                unlinkat(directory.fd, item.temporary, 0)
                continue
            }
            renamed.append(item)
        }

        // 4. The renames durable: one syncfs per filesystem again.
        var renameSyncErrors: [dev_t: Int32] = [:]
        for device in Set(renamed.map(\.device)) {
            let result = msa_syncfs(filesystems[device]!)
            if result != 0 { renameSyncErrors[device] = -result }
        }
        for item in renamed {
            guard let code = renameSyncErrors[item.device] else { continue }
            let write = writes[item.index]
            results[item.index] = .failure(WriteError(path: root.path(write.base + "/" + write.relative), message: "cannot sync its directory: \(String(cString: strerror(code)))", code: code))
        }
        return results
    }

    /// The directories one large write has open: each base directory once, each directory below
    /// it while fewer than ``batchSize`` are open (then all are closed and opened again on use).
    private struct OpenDirectories {
        struct Directory {
            var fd: Int32
            var device: dev_t
            /// The directories created to open it (relative to the base), this time only.
            var created: [String]
        }

        let writer: AtomicWriter
        var bases: [String: Int32] = [:]
        var directories: [String: Directory] = [:]

        init(writer: AtomicWriter) { self.writer = writer }

        mutating func directory(base: String, _ components: [String], key: String, create: Bool) throws(WriteError) -> Directory? {
            if var known = directories[key] {
                known.created = []
                return known
            }
            if directories.count >= AtomicWriter.batchSize {
                for directory in directories.values { close(directory.fd) }
                directories = [:]
            }
            let baseFD: Int32
            if let known = bases[base] {
                baseFD = known
            } else {
                guard let opened = try writer.openBase(base, create: create) else { return nil }
                bases[base] = opened
                baseFD = opened
            }
            let (opened, created) = try writer.openBelow(baseFD, basePath: writer.root.path(base), components, create: create, syncCreated: false)
            guard let fd = opened else { return nil }
            var info = stat()
            if fstat(fd, &info) != 0 { info.st_dev = 0 }
            let directory = Directory(fd: fd, device: info.st_dev, created: created)
            directories[key] = directory
            return directory
        }

        mutating func closeAll() {
            for directory in directories.values { close(directory.fd) }
            for fd in bases.values { close(fd) }
            directories = [:]
            bases = [:]
        }
    }

    private func temporaryName(for name: String) -> String {
        "\(Self.temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
    }

    /// Step 1 for one file: its temporary in `dir`, created (never over anything) and filled with
    /// its contents and mode; on failure nothing is left behind.
    private func writeTemporary(_ write: Write, name: String, in dir: Int32) -> Result<(fd: Int32, name: String), WriteError> {
        let temporary = temporaryName(for: name)
        let fd = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(write.mode))
        guard fd >= 0 else { return .failure(failure(write.base, write.relative, "cannot create a temporary file")) }
        if let problem = fill(fd, with: write.contents, mode: write.mode) {
            let error = failure(write.base, write.relative, problem)
            close(fd)
            unlinkat(dir, temporary, 0)
            return .failure(error)
        }
        return .success((fd, temporary))
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
        guard let baseFD = try openBase(base, create: create) else { return (nil, []) }
        defer { close(baseFD) }
        return try openBelow(baseFD, basePath: root.path(base), components, create: create, syncCreated: syncCreated)
    }

    /// Opens `base` (created with its parents when asked; existing parents are trusted and
    /// followed); nil when it does not exist.
    fileprivate func openBase(_ base: String, create: Bool) throws(WriteError) -> Int32? {
        let basePath = root.path(base)
        var fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && create {
            try makeDirectories(basePath)
            fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        if fd < 0 {
            if errno == ENOENT { return nil }
            let code = errno
            throw WriteError(path: basePath, message: "cannot open directory: \(String(cString: strerror(code)))", code: code)
        }
        return fd
    }

    /// Opens each of `components` below the open directory `baseFD` (left open) with
    /// `O_NOFOLLOW`, creating them when asked; a new descriptor, or nil when one is missing.
    fileprivate func openBelow(_ baseFD: Int32, basePath: String, _ components: [String], create: Bool, syncCreated: Bool) throws(WriteError) -> (fd: Int32?, created: [String]) {
        var fd = baseFD
        if components.isEmpty {
            let copy = fcntl(baseFD, F_DUPFD_CLOEXEC, 0)
            if copy < 0 {
                let code = errno
                throw WriteError(path: basePath, message: "cannot open directory: \(String(cString: strerror(code)))", code: code)
            }
            return (copy, [])
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
                    if fd != baseFD { close(fd) }
                    throw error
                }
                next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let code = errno
            if fd != baseFD { close(fd) }
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
