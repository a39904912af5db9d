import DesiredState

#if canImport(Glibc)
import Glibc
#endif

/// The one way the agent puts a file on disk.
///
/// Writes go to a temporary file in the same directory, are `fsync`ed, renamed over the target
/// and the directory is `fsync`ed, so a reader sees the old file or the new one, never half of
/// either. Below a file's base directory nothing is followed through a symlink: directories are
/// opened with `O_NOFOLLOW` and the file is read and replaced relative to its directory.
public struct AtomicWriter: Sendable {
    public let root: HostRoot

    public init(root: HostRoot) { self.root = root }

    public struct WriteError: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
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

    /// Writes `contents` to `base/relative` atomically. Returns the directories under `base` it
    /// had to create (relative paths), so that they can be removed again with the file.
    @discardableResult
    public func write(_ contents: [UInt8], base: String, relative: String, mode: UInt32) throws(WriteError) -> [String] {
        let (directories, name) = split(relative)
        let (opened, created) = try openDirectories(base: base, directories, create: true)
        guard let dir = opened else { throw WriteError(path: root.path(base + "/" + relative), message: "cannot create its directory") }
        defer { close(dir) }
        removeStaleTemporaries(in: dir)
        let temporary = "\(Self.temporaryMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
        let fd = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw failure(base, relative, "cannot create a temporary file") }
        var ok = false
        defer {
            if !ok { unlinkat(dir, temporary, 0) }
        }
        do {
            defer { close(fd) }
            var written = 0
            while written < contents.count {
                let n = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure(base, relative, "cannot write")
                }
                written += n
            }
            // The umask must not decide the mode: set it exactly.
            guard fchmod(fd, mode_t(mode)) == 0 else { throw failure(base, relative, "cannot set its mode") }
            guard fsync(fd) == 0 else { throw failure(base, relative, "cannot sync") }
        }
        // rename replaces whatever is at the name (even a symlink) without following it.
        guard renameat(dir, temporary, dir, name) == 0 else { throw failure(base, relative, "cannot rename into place") }
        ok = true
        guard fsync(dir) == 0 else { throw failure(base, relative, "cannot sync its directory") }
        return created
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
    private func openDirectories(base: String, _ components: [String], create: Bool) throws(WriteError) -> (fd: Int32?, created: [String]) {
        let basePath = root.path(base)
        var fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && create {
            try makeDirectories(basePath)
            fd = open(basePath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        if fd < 0 {
            if errno == ENOENT { return (nil, []) }
            throw WriteError(path: basePath, message: "cannot open directory: \(String(cString: strerror(errno)))")
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
                    fsync(fd)
                } else if errno != EEXIST {
                    let error = WriteError(path: basePath + "/" + walked.joined(separator: "/"), message: "cannot create directory: \(String(cString: strerror(errno)))")
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
                    throw WriteError(path: path, message: "is a symlink or not a directory; refusing to write through it")
                }
                throw WriteError(path: path, message: "cannot open directory: \(String(cString: strerror(code)))")
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
                throw WriteError(path: current, message: "cannot create directory: \(String(cString: strerror(errno)))")
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
        WriteError(path: root.path(base + "/" + relative), message: "\(what): \(String(cString: strerror(errno)))")
    }
}
