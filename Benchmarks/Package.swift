// swift-tools-version:6.1
// package-benchmark suite for mirror-agent's pure hot paths (parse, merge, render of 2,000
// registries), in its own package so the main Package.swift (tools 6.0) and its builds do not
// depend on ordo-one/benchmark. Run it with `make bench` or, from the repository root:
//   swift package --package-path Benchmarks benchmark
// Only the malloc-interposer trait is enabled: it counts allocations (mallocCountTotal), and
// leaving the default traits off keeps SwiftPM from needing the runtime-interposer package.
import PackageDescription

let package = Package(
    name: "mirror-agent-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "mirror-agent", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PurePipeline",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MarkedYAML", package: "mirror-agent"),
                .product(name: "DesiredState", package: "mirror-agent"),
                .product(name: "RuntimeWriters", package: "mirror-agent"),
            ],
            path: "Benchmarks/PurePipeline",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
