// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "mirror-agent",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mirror-agent", targets: ["NodeAgent"]),
        // For Benchmarks/ (a separate package): the pure hot paths it measures.
        .library(name: "MarkedYAML", targets: ["MarkedYAML"]),
        .library(name: "DesiredState", targets: ["DesiredState"]),
        .library(name: "RuntimeWriters", targets: ["RuntimeWriters"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // HealthProbe builds its client on NIO directly (event loop, TLS configuration).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // C libraries come from the system (Debian's -dev packages), never vendored.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // libsystemd calls Swift cannot make itself (variadic sd-bus calls), wrapped once.
        .target(name: "CSystemdShim", dependencies: ["CSystemd"], linkerSettings: [.linkedLibrary("systemd")]),
        // inotify, signalfd and timerfd for the daemon's poll loop; syncfs/writeback for the writer.
        .target(name: "CLinuxShim"),
        // Runtime actions over D-Bus (the only D-Bus code) and their pure planning.
        .target(name: "RuntimeActions", dependencies: ["CSystemdShim", "CSystemd"]),
        // Errors and warnings that carry a file:line:column, shared by every module.
        .target(name: "Diagnostics"),
        // YAML over libyaml, every node marked with where it came from.
        .target(name: "MarkedYAML", dependencies: ["CYAML", "Diagnostics"]),
        // The normalized model, every input dialect, merge rules, validation, agent settings.
        .target(name: "DesiredState", dependencies: ["MarkedYAML", "Diagnostics"]),
        // Renderers (pure), the one atomic writer, ownership manifest.
        .target(
            name: "RuntimeWriters",
            dependencies: ["DesiredState", "Diagnostics", "CLinuxShim", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // Mirror health probes.
        .target(
            name: "HealthProbe",
            dependencies: [
                "DesiredState", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // One pass (load, check, render, write, fix config.toml, restart/reload) shared by apply
        // and the daemon, and the daemon's policy (debounce, backoff, restart delay, actions in
        // flight, stopping) as a pure state machine.
        .target(name: "AgentCore", dependencies: ["DesiredState", "Diagnostics", "RuntimeWriters", "RuntimeActions", "HealthProbe"]),
        // The thin command-line and daemon layer.
        .executableTarget(
            name: "NodeAgent",
            dependencies: [
                "AgentCore", "DesiredState", "RuntimeWriters", "RuntimeActions", "HealthProbe", "Diagnostics", "CSystemd", "CLinuxShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "MarkedYAMLTests", dependencies: ["MarkedYAML", "Diagnostics"]),
        .testTarget(
            name: "DesiredStateTests",
            dependencies: ["DesiredState", "MarkedYAML", "Diagnostics"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "RuntimeWritersTests",
            dependencies: [
                "RuntimeWriters", "DesiredState", "Diagnostics", .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Golden", "Parity", "Fixtures"]
        ),
        .testTarget(
            name: "HealthProbeTests",
            dependencies: [
                "HealthProbe", "DesiredState", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "RuntimeActionsTests", dependencies: ["RuntimeActions"]),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "RuntimeActions"]),
    ]
)
