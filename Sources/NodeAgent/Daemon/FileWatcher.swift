import CLinuxShim

#if canImport(Glibc)
import Glibc
#endif

/// inotify on a set of directories. Directories that do not exist yet are watched for through
/// their parent, and a directory replaced as a whole (renamed over, deleted and recreated) is
/// watched again, so the caller only says which directories matter.
final class FileWatcher {
    struct Event {
        /// The watched directory (a path on this machine) and the name in it, if any.
        var directory: String
        var name: String
        var mask: UInt32
    }

    let fd: Int32
    private var byDescriptor: [Int32: String] = [:]
    private var wanted: [String] = []

    static let mask: UInt32 = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    init() throws(RuntimeError) {
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw RuntimeError("inotify_init1: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Watches exactly these directories (and, for those missing, their nearest existing parent).
    func watch(_ directories: [String]) {
        wanted = directories
        refresh()
    }

    /// Brings the watches in line with what exists now: directories that appeared are watched,
    /// watches on directories that are no longer wanted are dropped, and a directory replaced as
    /// a whole (its old watch ended) is watched again. Unchanged watches are left alone, so no
    /// event is lost while refreshing.
    func refresh() {
        var targets = Set<String>()
        for directory in wanted {
            var path = directory
            // A missing directory is watched for through the nearest parent that exists.
            while !isDirectory(path), let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                path = String(path[..<slash])
            }
            targets.insert(path)
        }
        for (wd, path) in byDescriptor where !targets.contains(path) {
            inotify_rm_watch(fd, wd)
            byDescriptor[wd] = nil
        }
        let watched = Set(byDescriptor.values)
        for path in targets.sorted() where !watched.contains(path) {
            let wd = inotify_add_watch(fd, path, Self.mask)
            if wd >= 0 { byDescriptor[wd] = path }
        }
    }

    /// Room for every event one read can return: the shim reads 16 KiB, and an event takes at
    /// least 16 bytes, so nothing read is ever dropped.
    private var buffer = [msa_inotify_event](repeating: msa_inotify_event(), count: 16384 / 16)

    /// Everything pending (non-blocking): reads until the queue is empty. When the kernel's queue
    /// overflowed (`IN_Q_OVERFLOW`), events were lost: every watched directory is then reported
    /// as changed (an event with an empty name), so the caller rescans everything.
    func read() -> [Event] {
        var events: [Event] = []
        var needsRefresh = false
        var overflowed = false
        while true {
            let n = buffer.withUnsafeMutableBufferPointer { msa_inotify_read(fd, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { break }
            for i in 0..<Int(n) {
                let event = buffer[i]
                if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    overflowed = true
                    continue
                }
                guard let directory = byDescriptor[event.wd] else { continue }  // a watch already dropped
                let name = withUnsafeBytes(of: event.name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if event.mask & UInt32(IN_IGNORED) != 0 {
                    // The directory is gone (deleted or replaced): its watch ended.
                    byDescriptor[event.wd] = nil
                    needsRefresh = true
                }
                if event.mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_ISDIR) != 0 { needsRefresh = true }
                events.append(Event(directory: directory, name: name, mask: event.mask))
            }
        }
        if overflowed {
            // Watches may have ended unseen too: check them all, then report everything.
            needsRefresh = true
            for directory in Set(byDescriptor.values).union(wanted).sorted() {
                events.append(Event(directory: directory, name: "", mask: UInt32(IN_Q_OVERFLOW)))
            }
        }
        if needsRefresh { refresh() }
        return events
    }

    private func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}

struct RuntimeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
