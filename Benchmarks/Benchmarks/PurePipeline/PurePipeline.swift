// The pure hot paths of one pass over a large desired state, measured with package-benchmark:
// the same 2,000-registry k3s registries.yaml as bench/bench.py's B2 (3 mirrors each), parsed,
// loaded into the normalized model, and rendered for containerd (one hosts.toml per host) and
// CRI-O (one drop-in), with the shipped packaging/agent.yaml settings. Only public APIs of
// the agent's own modules are called, the way a pass (AgentCore.Reconciliation, through
// RuntimeWriters.Reconciler.plan) calls them; nothing here touches the file system while
// measuring.
//
// Allocation counts (mallocCountTotal) are the regression signal: they are exact from run to
// run, unlike time on a shared machine. Thresholds/ holds the p90 of each metric from a
// measured run (`thresholds update`); `thresholds check` fails (exit 2) when a run is worse
// than that by more than the tolerances below. See README.md, "Pure hot paths" under "Performance".

import Benchmark
import DesiredState
import Foundation
import MarkedYAML
import RuntimeWriters

/// bench/bench.py b2(): 2,000 registries, three mirrors each (two HTTPS, one plain HTTP).
let registryCount = 2000
let scaleFile = "/etc/mirror-agent/mirrors.d/scale.yaml"
let scaleYAML: String = {
    var text = "mirrors:\n"
    for i in 0..<registryCount {
        text += "  reg\(i).bench.example:\n    endpoint: [\"https://m\(i)a.mirror.example\", \"https://m\(i)b.mirror.example:5000\", \"http://10.\(i / 250).\(i % 250).3:6000\"]\n"
    }
    return text
}()

/// The shipped agent.yaml (every key commented out: the defaults), as bench.py uses it.
let settings: AgentSettings = {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = repository.appendingPathComponent("packaging/agent.yaml").path
    guard let data = FileManager.default.contents(atPath: path) else { fatalError("cannot read \(path)") }
    let (settings, diagnostics) = AgentSettings.parse(Array(data), file: path)
    guard !diagnostics.hasErrors else { fatalError("\(path) is invalid: \(diagnostics)") }
    return settings
}()

/// A scratch root as in bench.py has no containerd to ask for its version.
let containerd = ContainerdHostsRenderer(
    hostsDirectory: settings.containerd.hostsDir ?? Reconciler.defaultHostsDirectory, features: ContainerdFeatures(version: nil),
    dialTimeout: settings.containerd.dialTimeout, plainHTTPHosts: Set(settings.insecureRegistries))
let crio = CRIORegistriesRenderer(dropInPath: settings.crio.dropIn, plainHTTPHosts: Set(settings.insecureRegistries))

func load() -> MirrorModel {
    let loaded = DesiredStateLoader.load(text: scaleYAML, file: scaleFile, settings: settings)
    guard loaded.isValid, loaded.model.registries.count == registryCount, loaded.model.mirrorCount == 3 * registryCount else {
        fatalError("the 2,000-registry input did not load: \(loaded.diagnostics)")
    }
    return loaded.model
}

func render(_ model: MirrorModel) -> (RenderResult, RenderResult) {
    let hosts = containerd.render(model)
    let dropIn = crio.render(model)
    guard hosts.files.count == registryCount, dropIn.files.count == 1 else {
        fatalError("rendered \(hosts.files.count) hosts.toml files and \(dropIn.files.count) CRI-O drop-ins, not \(registryCount) and 1")
    }
    return (hosts, dropIn)
}

let benchmarks: @Sendable () -> Void = {
    // Allocation counts are the same in every iteration (p0 = p100) and within ~50 between
    // runs (hashing is seeded per process): more than 1,000 over the threshold (half an
    // allocation per registry) is a regression, so one more allocation per registry or per
    // mirror fails the check. Time and memory are reported with wide tolerances (wall clock
    // 10x, peak RSS 1.5x): the machine is shared (a loaded run took 2-5x the idle time) and may
    // not be the one that measured them, so they only catch gross regressions. CPU time is not
    // a metric here: Linux reports it in 10 ms ticks, as long as a whole parse.
    let allocations = BenchmarkThresholds(absolute: [.p90: 1000])
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(3),
        maxIterations: 20,
        thresholds: [
            .mallocCountTotal: allocations,
            .wallClock: BenchmarkThresholds(relative: [.p90: 900.0]),
            .peakMemoryResident: BenchmarkThresholds(relative: [.p90: 50.0]),
        ])

    let bytes = Array(scaleYAML.utf8)
    let model = load()

    // (a) "parse-2000": libyaml into marked nodes (YAMLParser), the parse every load starts with.
    Benchmark("parse-2000") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try YAMLParser.parse(bytes, mapping: LocationMapping(file: scaleFile)))
        }
    }
    // (b) "load-2000": parse, decode (k3s dialect), merge and validate into the normalized model
    // (DesiredStateLoader). Merging is internal to the loader: its cost is load minus parse.
    Benchmark("load-2000") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(load())
        }
    }
    // (c) "render-2000": the model rendered, 2,000 hosts.toml and the CRI-O drop-in.
    Benchmark("render-2000") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(render(model))
        }
    }
    // (d) "pipeline-2000": the whole pure pipeline of a pass, text to rendered files.
    Benchmark("pipeline-2000") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(render(load()))
        }
    }
}
