import NIOPosix

/// The one event-loop thread every probe connection runs on (the HTTP client's and the
/// certificate inspector's). Probes wait on the network, not on the CPU: one thread carries
/// hundreds of them, where NIO's shared group would start one thread per core (64 on a
/// 64-core node), each with its own stack and allocator arena. Nothing in the agent uses
/// `MultiThreadedEventLoopGroup.singleton` or `HTTPClient.shared`.
public enum ProbeEventLoop {
    public static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
