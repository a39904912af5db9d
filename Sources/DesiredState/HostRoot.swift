#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host's root directory. Every path the agent touches is a host path (`/etc/...`) joined
/// to this root, so tests, image builders and chroots can point the agent anywhere.
public struct HostRoot: Sendable, Equatable, CustomStringConvertible {
    /// The root as given, without a trailing slash ("" for `/`).
    public let prefix: String

    public init(_ path: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        prefix = p == "/" ? "" : p
    }

    public static let system = HostRoot("/")

    public var description: String { prefix.isEmpty ? "/" : prefix }

    /// The path on this machine of a host path: `/etc/x` under root `/tmp/r` is `/tmp/r/etc/x`.
    public func path(_ hostPath: String) -> String {
        // Host paths are absolute; a relative one (refused by validation) still stays inside.
        hostPath.hasPrefix("/") ? prefix + hostPath : prefix + "/" + hostPath
    }

    /// The host path of a path on this machine, when it lies under the root.
    public func hostPath(of path: String) -> String? {
        if prefix.isEmpty { return path }
        if path == prefix { return "/" }
        return path.hasPrefix(prefix + "/") ? String(path.dropFirst(prefix.count)) : nil
    }
}

/// Small file-system reads the loader needs, in one place.
///
/// Every read opens with `O_NONBLOCK` (a FIFO or a device never blocks the agent), checks with
/// `fstat` that it got a regular file, and reads at most a given number of bytes. Reads of input
/// the agent acts on (`trustCheck`) also follow sshd's `StrictModes`: see ``trustedPath``.
public enum FileSystem {
    public enum ReadError: Error, Equatable {
        case missing
        case notRegularFile
        case tooLarge(Int)
        case unsafe(String)
        case system(String)
    }

    /// Reads a whole regular file of at most `limit` bytes (larger files are refused unread).
    ///
    /// With `trustCheck`, the path is first resolved by hand (``trustedPath``): every directory,
    /// symlink and the file itself must be owned by root and not writable by group or others, so
    /// a file someone else could have written, or pointed a link at, is refused before a byte of
    /// it is read. Paths are resolved under `root` (an absolute symlink target is a host path).
    /// Without it, symlinks are followed unless `followSymlinks` is false.
    public static func read(
        _ path: String, limit: Int, trustCheck: Bool = false, root: HostRoot = .system, followSymlinks: Bool = true
    ) -> Result<[UInt8], ReadError> {
        var openPath = path
        var expected: (dev: UInt64, ino: UInt64)?
        var noFollow = !followSymlinks
        if trustCheck {
            switch trustedPath(path, root: root) {
            case .failure(let error): return .failure(error)
            case .success(let resolved):
                openPath = resolved.path
                expected = (resolved.device, resolved.inode)
                noFollow = true
            }
        }
        let fd = open(openPath, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (noFollow ? O_NOFOLLOW : 0))
        guard fd >= 0 else {
            if errno == ELOOP && noFollow { return .failure(.unsafe("it is a symlink")) }
            return .failure(errno == ENOENT ? .missing : .system(String(cString: strerror(errno))))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.system(String(cString: strerror(errno)))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile) }
        if let expected, UInt64(info.st_dev) != expected.dev || UInt64(info.st_ino) != expected.ino {
            return .failure(.unsafe("it was replaced while it was checked"))
        }
        if Int(info.st_size) > limit { return .failure(.tooLarge(Int(info.st_size))) }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.system(String(cString: strerror(errno))))
            }
            if n == 0 { break }
            total += n
            // The file grew while we read it: never read past the limit.
            if total > limit { return .failure(.tooLarge(total)) }
            if total == bytes.count { bytes += [UInt8](repeating: 0, count: 4096) }
        }
        bytes.removeSubrange(total...)
        return .success(bytes)
    }

    /// A path resolved by ``trustedPath``: the regular file it ends at.
    public struct TrustedFile: Sendable, Equatable {
        public var path: String
        public var device: UInt64
        public var inode: UInt64
    }

    /// Resolves `path` one component at a time with `lstat`, never letting the kernel follow a
    /// link, and checks everything on the way as sshd's `StrictModes` does:
    ///
    /// - every directory below `root` (and `/` when the path is outside it) is owned by root and
    ///   not writable by group or others, unless it is sticky (`/tmp`): then only root can
    ///   replace the root-owned entry we go through;
    /// - every symlink is owned by root (a symlink's mode means nothing; who made it does), and
    ///   its target is checked the same way; at most 40 links;
    /// - the file at the end is a regular file owned by root and not writable by group or others.
    ///
    /// "Root" means uid 0 or the agent's own uid (tests running unprivileged). A ConfigMap mount
    /// (`name.yaml -> ..data/name.yaml`, `..data -> ..2024_01_01_00_00_00.1234`, all root's)
    /// passes. The refusal names the offending path and why.
    public static func trustedPath(_ given: String, root: HostRoot) -> Result<TrustedFile, ReadError> {
        var path = given
        if !path.hasPrefix("/") {
            // A relative path (validate's arguments) is relative to the working directory.
            var buffer = [CChar](repeating: 0, count: 4096)
            guard getcwd(&buffer, buffer.count) != nil else { return .failure(.system("cannot find the working directory")) }
            let cwd = String(cString: buffer)
            path = (cwd == "/" ? "" : cwd) + "/" + path
        }
        let base = root.hostPath(of: path) != nil ? root.prefix : ""
        guard let host = root.hostPath(of: path) ?? (path.hasPrefix("/") ? path : nil) else {
            return .failure(.system("not an absolute path"))
        }
        let me = geteuid()
        func ownerOK(_ info: stat) -> Bool { info.st_uid == 0 || info.st_uid == me }
        func modeText(_ info: stat) -> String { String(info.st_mode & 0o7777, radix: 8) }
        func checkDirectory(_ dir: String, _ next: stat?) -> ReadError? {
            var info = stat()
            guard lstat(dir.isEmpty ? "/" : dir, &info) == 0 else { return .system("\(dir.isEmpty ? "/" : dir): \(String(cString: strerror(errno)))") }
            let shown = dir.isEmpty ? "/" : dir
            if !ownerOK(info) { return .unsafe("the directory \(shown) is owned by uid \(info.st_uid), not root") }
            if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                // A sticky directory (/tmp) lets nobody but the owner replace an entry in it.
                let sticky = info.st_mode & S_ISVTX != 0
                if !(sticky && next.map(ownerOK) == true) {
                    return .unsafe("the directory \(shown) is writable by \(info.st_mode & S_IWOTH != 0 ? "others" : "its group") (mode \(modeText(info))); run chmod go-w on it")
                }
            }
            return nil
        }
        // `pending` holds the components still to walk; `current` the checked prefix (a path on
        // this machine, under `base`).
        var pending = host.split(separator: "/").map(String.init).reversed() as [String]
        var current = base
        var links = 0
        if let error = checkDirectory(base, nil) { return .failure(error) }
        while let name = pending.popLast() {
            if name == "." || name.isEmpty { continue }
            if name == ".." {
                if current.count > base.count, let slash = current.lastIndex(of: "/") { current = String(current[..<slash]) }
                continue
            }
            let next = current + "/" + name
            var info = stat()
            guard lstat(next, &info) == 0 else {
                return .failure(errno == ENOENT ? .missing : .system("\(next): \(String(cString: strerror(errno)))"))
            }
            // The directory we are in must protect this entry.
            if let error = checkDirectory(current, info) { return .failure(error) }
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                if !ownerOK(info) { return .failure(.unsafe("the symlink \(next) is owned by uid \(info.st_uid), not root")) }
                links += 1
                if links > 40 { return .failure(.unsafe("more than 40 symlinks on the way to it")) }
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlink(next, &buffer, 4096)
                guard n > 0 else { return .failure(.system("\(next): \(String(cString: strerror(errno)))")) }
                let target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") { current = base }
                pending += target.split(separator: "/").map(String.init).reversed()
            case S_IFDIR:
                current = next
            case S_IFREG:
                guard pending.allSatisfy({ $0 == "." || $0.isEmpty }) else { return .failure(.system("\(next): not a directory")) }
                if !ownerOK(info) { return .failure(.unsafe("\(next == path || next == given ? "it" : next) is owned by uid \(info.st_uid), not root")) }
                if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                    let who = info.st_mode & S_IWOTH != 0 ? "world-writable" : "group-writable"
                    return .failure(.unsafe("\(next == path || next == given ? "it" : next) is \(who) (mode \(modeText(info))); run chmod go-w on it"))
                }
                return .success(TrustedFile(path: next, device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
            default:
                if pending.contains(where: { $0 != "." && !$0.isEmpty }) { return .failure(.system("\(next): not a directory")) }
                return .failure(.notRegularFile)
            }
        }
        // The path ended at a directory.
        return .failure(.notRegularFile)
    }

    /// Names in a directory (not `.` and `..`), or nil if it does not exist.
    public static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
