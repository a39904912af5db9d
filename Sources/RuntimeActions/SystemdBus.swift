import CSystemd
import CSystemdShim

#if canImport(Glibc)
import Glibc
#endif

/// A failure of a runtime action or of talking to systemd, in words an admin can act on, with
/// the errno sd-bus returned (ECONNREFUSED, ETIMEDOUT, EACCES...) where there was one.
public struct RuntimeActionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var code: Int32?
    public init(_ message: String, code: Int32? = nil) {
        self.message = message
        self.code = code
    }
    public var description: String { message }
}

/// The system bus, for systemd's Manager API. The only place the agent talks D-Bus.
public final class SystemdBus: @unchecked Sendable {
    private let bus: OpaquePointer

    private init(bus: OpaquePointer) { self.bus = bus }

    deinit { sd_bus_flush_close_unref(bus) }

    /// Whether this machine runs systemd at all (`/run/systemd/system` exists).
    public static var isSystemdRunning: Bool { sd_booted() > 0 }

    /// Connects to the system bus, or says clearly why it cannot.
    public static func connect() throws(RuntimeActionError) -> SystemdBus {
        guard isSystemdRunning else {
            throw RuntimeActionError("systemd is not running here (no /run/systemd/system); runtime restarts and reloads are not possible")
        }
        var handle: OpaquePointer?
        let r = msa_bus_open(&handle)
        guard r >= 0, let handle else {
            throw RuntimeActionError("cannot connect to the system D-Bus (nor, as root, to systemd's private socket): \(String(cString: strerror(-r)))", code: -r)
        }
        return SystemdBus(bus: handle)
    }

    /// Starts a Manager job (`RestartUnit`, `ReloadUnit`, `ReloadOrRestartUnit`) and waits for
    /// its `JobRemoved` signal. Returns the job result ("done", "failed", ...).
    public func job(_ method: String, unit: String, mode: String = "replace", timeout: Duration) throws(RuntimeActionError) -> String {
        var result: UnsafeMutablePointer<CChar>?
        var error: UnsafeMutablePointer<CChar>?
        defer {
            free(result)
            free(error)
        }
        let micros = UInt64(timeout.components.seconds) * 1_000_000 + UInt64(timeout.components.attoseconds / 1_000_000_000_000)
        let r = msa_unit_job(bus, method, unit, mode, micros, &result, &error)
        guard r >= 0, let result else {
            throw RuntimeActionError("\(method) \(unit): \(error.map { String(cString: $0) } ?? String(cString: strerror(-r)))", code: r < 0 ? -r : nil)
        }
        return String(cString: result)
    }

    public func activeState(_ unit: String) throws(RuntimeActionError) -> String {
        try stringProperty(unit, "org.freedesktop.systemd1.Unit", "ActiveState")
    }

    public func mainPID(_ unit: String) throws(RuntimeActionError) -> UInt32 {
        UInt32(try numberProperty(unit, "org.freedesktop.systemd1.Service", "MainPID", type: "u"))
    }

    /// When the unit's main process started (`ExecMainStartTimestamp`, µs since the epoch; 0
    /// when it never started).
    public func execMainStartTimestamp(_ unit: String) throws(RuntimeActionError) -> UInt64 {
        try numberProperty(unit, "org.freedesktop.systemd1.Service", "ExecMainStartTimestamp", type: "t")
    }

    public func canReload(_ unit: String) throws(RuntimeActionError) -> Bool {
        try numberProperty(unit, "org.freedesktop.systemd1.Unit", "CanReload", type: "b") != 0
    }

    /// `LoadState`: "loaded", "not-found", ...
    public func loadState(_ unit: String) throws(RuntimeActionError) -> String {
        try stringProperty(unit, "org.freedesktop.systemd1.Unit", "LoadState")
    }

    private func stringProperty(_ unit: String, _ interface: String, _ name: String) throws(RuntimeActionError) -> String {
        var value: UnsafeMutablePointer<CChar>?
        var error: UnsafeMutablePointer<CChar>?
        defer {
            free(value)
            free(error)
        }
        let r = msa_unit_property_string(bus, unit, interface, name, &value, &error)
        guard r >= 0, let value else {
            throw RuntimeActionError("\(unit) \(name): \(error.map { String(cString: $0) } ?? String(cString: strerror(-r)))", code: r < 0 ? -r : nil)
        }
        return String(cString: value)
    }

    private func numberProperty(_ unit: String, _ interface: String, _ name: String, type: Character) throws(RuntimeActionError) -> UInt64 {
        var value: UInt64 = 0
        var error: UnsafeMutablePointer<CChar>?
        defer { free(error) }
        let r = msa_unit_property_u64(bus, unit, interface, name, CChar(type.asciiValue!), &value, &error)
        guard r >= 0 else {
            throw RuntimeActionError("\(unit) \(name): \(error.map { String(cString: $0) } ?? String(cString: strerror(-r)))", code: r < 0 ? -r : nil)
        }
        return value
    }
}
