import DesiredState
import Diagnostics
import MarkedYAML
import RuntimeWriters

/// libFuzzer entry point: any bytes through the YAML layer, every dialect, the merge and both
/// renderers. It must never crash; a rejected input must say where (path:line:column), and an
/// accepted one must render.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let result = DesiredStateLoader.load(
        text: text, file: "fuzz.yaml", root: HostRoot("/nonexistent-fuzz-root"), settings: AgentSettings(),
        limits: YAMLLimits(maxBytes: 1 << 20, maxNodes: 100_000, maxDepth: 64))
    if result.isValid {
        _ = ContainerdHostsRenderer(hostsDirectory: "/etc/containerd/certs.d").render(result.model)
        _ = CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf").render(result.model)
    } else {
        for error in result.diagnostics.errors where error.location == nil {
            fatalError("an error without a place: \(error)")
        }
    }
    _ = AgentSettings.parse(bytes, file: "agent.yaml")
    return 0
}
