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
public enum FileSystem {
    public enum ReadError: Error, Equatable {
        case missing
        case notRegularFile
        case tooLarge(Int)
        case unsafe(String)
        case system(String)
    }

    /// Reads a whole regular file of at most `limit` bytes (larger files are refused unread).
    /// With `trustCheck`, a file that others could have written is refused: the agent runs as
    /// root and acts on what the file says.
    public static func read(_ path: String, limit: Int, trustCheck: Bool = false) -> Result<[UInt8], ReadError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(errno == ENOENT ? .missing : .system(String(cString: strerror(errno))))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(.system(String(cString: strerror(errno)))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile) }
        if trustCheck {
            if info.st_mode & S_IWOTH != 0 {
                return .failure(.unsafe("it is world-writable (mode \(String(info.st_mode & 0o7777, radix: 8))); run chmod o-w on it"))
            }
            if info.st_uid != 0 && info.st_uid != geteuid() {
                return .failure(.unsafe("it is owned by uid \(info.st_uid), not root"))
            }
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
