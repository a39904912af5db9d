import CSystemd
import Diagnostics

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3): tells systemd the daemon is ready, reloading, stopping, alive, and what it is
/// doing (`STATUS=`, shown by `systemctl status`). A no-op when not started by systemd.
struct SystemdNotifier {
    func ready(status: String) { send("READY=1\nSTATUS=\(clean(status))") }
    /// MONOTONIC_USEC= lets systemd (253+) tell this reload from an older one.
    func reloading(status: String) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        send("RELOADING=1\nMONOTONIC_USEC=\(usec)\nSTATUS=\(clean(status))")
    }
    func stopping() { send("STOPPING=1\nSTATUS=stopping") }
    func status(_ text: String) { send("STATUS=\(clean(text))") }
    func watchdog() { send("WATCHDOG=1") }

    /// The watchdog interval systemd asked for (WATCHDOG_USEC), if it is meant for us.
    static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }

    private func send(_ state: String) { _ = sd_notify(0, state) }

    /// One line: systemd shows STATUS= as is. Control characters are escaped (a path of the
    /// configuration in force may hold one), credentials in URLs redacted.
    private func clean(_ text: String) -> String {
        String(Quote.message(String(text.map { $0 == "\n" ? " " : $0 })).prefix(400))
    }
}
