#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock(2)` on a lock file, for read-modify-write of a record that more than one
/// process updates (the daemon and `mirror-agent apply` both update the pending-actions record
/// in the state directory). Never blocks for long: the lock is tried without blocking every
/// 10 ms until `timeoutMilliseconds` has passed, then the caller is told it could not have it.
/// The lock file is never removed (removing it would let two processes lock two files).
public enum FileLock {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    /// Runs `body` holding the lock on `path` (created 0600 if missing, with its directory).
    /// The lock is released when `body` returns, whatever it returns, and by the kernel if the
    /// process dies.
    public static func withExclusive<T>(_ path: String, timeoutMilliseconds: Int = 5000, _ body: () throws -> T) throws -> T {
        var fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            makeDirectories(String(path[..<slash]))
            fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw Failure(path: path, message: "cannot open the lock file: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // A regular file: a FIFO or device put in its place is refused, not waited on.
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(path: path, message: "the lock file is not a regular file")
        }
        var waited = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw Failure(path: path, message: "cannot lock: \(String(cString: strerror(errno)))")
            }
            guard waited < timeoutMilliseconds else {
                throw Failure(path: path, message: "still locked by another mirror-agent after \(timeoutMilliseconds) ms")
            }
            usleep(10_000)
            waited += 10
        }
        defer { _ = flock(fd, LOCK_UN) }
        return try body()
    }

    private static func makeDirectories(_ path: String) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) == 0 { _ = chmod(current, 0o755) }
        }
    }
}
