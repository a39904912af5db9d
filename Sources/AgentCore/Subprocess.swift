#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a program to its end with posix_spawn (no shell, this process's environment, standard
/// input from /dev/null, the signal mask and dispositions reset for the child), reading what
/// it writes. Plain libc, so the agent needs no Foundation `Process`.
public enum Subprocess {
    public struct Output: Sendable {
        /// The exit status, nil when the program was ended by a signal (or by the time limit).
        public var exitStatus: Int32?
        public var standardOutput: [UInt8]
        /// What it wrote on standard error, when asked for (else that went to /dev/null).
        public var standardError: [UInt8]
        public var timedOut: Bool

        public var succeeded: Bool { exitStatus == 0 }
    }

    /// `path arguments...`; nil when the program cannot be started. With `timeout`, a program
    /// still running then is killed (SIGKILL) and waited for, and `timedOut` is set.
    public static func run(_ path: String, _ arguments: [String], captureStandardError: Bool = false, timeout: Duration? = nil) -> Output? {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard Self.pipeClosedOnExec(&outPipe) else { return nil }
        if captureStandardError, !Self.pipeClosedOnExec(&errPipe) {
            close(outPipe[0]); close(outPipe[1])
            return nil
        }
        defer {
            for fd in outPipe + errPipe where fd >= 0 { close(fd) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The pipes first: if this process started with 0, 1 or 2 closed, a pipe end may be one of
        // them, and opening /dev/null there first would replace it.
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        if captureStandardError {
            posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        // The daemon blocks the signals it reads through signalfd; the child must not inherit that.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid = pid_t()
        guard posix_spawn(&pid, path, &actions, &attributes, argv, environ) == 0 else { return nil }

        // The parent keeps only the read ends.
        close(outPipe[1]); outPipe[1] = -1
        if captureStandardError { close(errPipe[1]); errPipe[1] = -1 }

        var output = Output(exitStatus: nil, standardOutput: [], standardError: [], timedOut: false)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var open: [Int32] = captureStandardError ? [outPipe[0], errPipe[0]] : [outPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var waitMs: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                if left <= .zero {
                    output.timedOut = true
                    kill(pid, SIGKILL)
                    break
                }
                waitMs = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 60_000))
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 {
                if errno == EINTR { continue }
                kill(pid, SIGKILL)
                break
            }
            for entry in fds where entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if entry.fd == outPipe[0] {
                        output.standardOutput += buffer[0..<n]
                    } else {
                        output.standardError += buffer[0..<n]
                    }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }

        var status: Int32 = 0
        var reaped = false
        // A program may close its output and go on running: the time limit holds for it too.
        if let deadline, !output.timedOut {
            while true {
                let ended = waitpid(pid, &status, WNOHANG)
                if ended == pid { reaped = true; break }
                if ended < 0, errno != EINTR { return output }
                if ContinuousClock.now >= deadline {
                    output.timedOut = true
                    kill(pid, SIGKILL)
                    break
                }
                var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
                nanosleep(&pause, nil)
            }
        }
        while !reaped, waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return output }
        }
        // WIFEXITED / WEXITSTATUS (macros Swift does not import).
        if status & 0x7f == 0 { output.exitStatus = (status >> 8) & 0xff }
        return output
    }

    /// A pipe whose ends other programs this process starts do not inherit. (Glibc's Swift
    /// module does not export pipe2; the window between pipe and fcntl matters only if another
    /// thread spawns a program at that very moment.)
    private static func pipeClosedOnExec(_ ends: inout [Int32]) -> Bool {
        guard pipe(&ends) == 0 else { return false }
        for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return true
    }
}
