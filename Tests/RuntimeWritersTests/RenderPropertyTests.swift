import DesiredState
import PropertyBased
import RuntimeWriters
import TOMLKit
import Testing

/// Any valid model renders to TOML that parses back to the same model: hosts, order, paths,
/// capabilities, TLS files and headers, whatever characters they hold.
struct RenderPropertyTests {
    /// A deterministic model from a seed (the generator of record for this property).
    static func model(seed: UInt64) -> MirrorModel {
        var rng = SplitMix(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        func text() -> String {
            let alphabet: [Unicode.Scalar] = ["a", "Z", "0", "-", ".", "/", " ", "\"", "\\", "'", "#", "=", "[", "]", "\n", "\t", "\r", "\u{1}", "\u{7F}", "é", "✓", "日", "\u{1F600}", "$", "{", "}"]
            return String(String.UnicodeScalarView((0..<Int(rng.next() % 12 + 1)).map { _ in pick(alphabet) }))
        }
        func host(_ i: Int) -> String { pick(["m\(i).example", "mirror-\(i).corp.example:5000", "10.0.\(i % 250).1:6000", "localhost:\(5000 + i)"]) }
        var registries: [Registry] = []
        var used = Set<String>()
        for r in 0..<Int(rng.next() % 6 + 1) {
            let source = "reg\(r)-\(rng.next() % 1000).example" + pick(["", ":5000"])
            guard used.insert(source).inserted else { continue }
            var mirrors: [MirrorEndpoint] = []
            var hosts = Set<String>()
            for m in 0..<Int(rng.next() % 4 + 1) {
                let h = host(r * 10 + m)
                guard hosts.insert(h).inserted else { continue }
                let pullFrom = pick(PullFrom.allCases)
                var tls = TLSSettings()
                if rng.next() % 2 == 0 { tls.caFiles = (0..<Int(rng.next() % 3 + 1)).map { _ in "/etc/pki/" + text() } }
                if rng.next() % 3 == 0 {
                    tls.clientCertificate = "/c/" + text()
                    tls.clientKey = "/k/" + text()
                }
                tls.skipVerify = rng.next() % 4 == 0
                let headers = (0..<Int(rng.next() % 3)).map { i in HTTPHeader(name: "X-H\(i)", values: (0..<Int(rng.next() % 2 + 1)).map { _ in text() }) }
                mirrors.append(
                    MirrorEndpoint(
                        scheme: pick([.http, .https]), host: h, path: pick(["", "/ns", "/a/b-c"]),
                        capabilities: pullFrom == .digestOnly ? [.pull] : pick([[.pull, .resolve], [.pull, .resolve, .push]]),
                        pullFrom: pullFrom, tls: tls, headers: headers))
            }
            registries.append(Registry(source: .host(source), mirrors: mirrors, sourcePolicy: pick([.allowContactingSource, .neverContactSource])))
        }
        return MirrorModel(registries: registries.sorted { $0.source < $1.source })
    }

    @Test func renderedHostsTomlParsesBackToTheModel() async throws {
        await propertyCheck(count: 400, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            let model = Self.model(seed: seed)
            let files = ContainerdHostsRenderer(hostsDirectory: "/h", features: ContainerdFeatures(version: "2.1.0")).render(model).files
            #expect(files.count == model.registries.count)
            for (registry, file) in zip(model.registries, files) {
                #expect(file.relativePath == ContainerdHostsRenderer.directoryName(for: registry.source.host!) + "/hosts.toml")
                guard let table = try? TOMLTable(string: file.contents) else {
                    Issue.record("does not parse: \(file.contents)")
                    continue
                }
                let hosts = table["host"]?.table ?? TOMLTable()
                var expected = registry.mirrors
                if registry.sourcePolicy == .neverContactSource {
                    // The last mirror is the server (and keeps a [host] table only when it is alone).
                    let last = expected.count > 1 ? expected.removeLast() : expected[expected.count - 1]
                    #expect(table["server"]?.string == Self.url(last))
                    Self.compare(last, table)
                } else {
                    #expect(table["server"]?.string == "https://" + registry.source.host!)
                }
                #expect(hosts.keys.count == expected.count)
                // Order: the [host] tables appear in mirror order.
                let positions = expected.map { file.contents.range(of: "[host.\(Self.quoted(Self.url($0)))]")?.lowerBound }
                #expect(positions.allSatisfy { $0 != nil })
                #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
                for mirror in expected {
                    guard let t = hosts[Self.url(mirror)]?.table else {
                        Issue.record("no table for \(Self.url(mirror)) in \(file.contents)")
                        continue
                    }
                    Self.compare(mirror, t)
                }
            }
        }
    }

    @Test func renderedCRIODropInParsesBackToTheModel() async throws {
        await propertyCheck(count: 400, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            let model = Self.model(seed: seed)
            let files = CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf").render(model).files
            guard let file = files.first, let table = try? TOMLTable(string: file.contents), let registries = table["registry"]?.array else {
                Issue.record("no parsable drop-in")
                return
            }
            let tables = registries.compactMap(\.table)
            #expect(tables.map { $0["prefix"]?.string } == model.registries.map { $0.source.description })
            for (registry, t) in zip(model.registries, tables) {
                #expect((t["blocked"]?.bool ?? false) == (registry.sourcePolicy == .neverContactSource))
                let mirrors = (t["mirror"]?.array ?? TOMLArray()).compactMap(\.table)
                #expect(mirrors.map { $0["location"]?.string } == registry.mirrors.map { $0.host + $0.path })
                #expect(mirrors.map { $0["insecure"]?.bool } == registry.mirrors.map { $0.scheme == .http || $0.tls.skipVerify })
                #expect(mirrors.map { $0["pull-from-mirror"]?.string } == registry.mirrors.map { $0.pullFrom == .all ? nil : $0.pullFrom.rawValue })
            }
        }
    }

    static func compare(_ mirror: MirrorEndpoint, _ t: TOMLTable) {
        #expect(t["capabilities"]?.array?.compactMap(\.string) == mirror.capabilities.map(\.rawValue))
        let ca = t["ca"]?.string.map { [$0] } ?? t["ca"]?.array?.compactMap(\.string) ?? []
        #expect(ca == mirror.tls.caFiles)
        let client = t["client"]?.array?.first?.array?.compactMap(\.string)
        #expect(client == mirror.tls.clientCertificate.map { [$0, mirror.tls.clientKey!] })
        #expect((t["skip_verify"]?.bool ?? false) == mirror.tls.skipVerify)
        #expect((t["override_path"]?.bool ?? false) == !mirror.path.isEmpty)
        let headers = t["header"]?.table
        for header in mirror.headers {
            #expect(headers?[header.name]?.array?.compactMap(\.string) == header.values)
        }
    }

    static func url(_ m: MirrorEndpoint) -> String { "\(m.scheme.rawValue)://\(m.host)" + (m.path.isEmpty ? "" : "/v2" + m.path) }
    static func quoted(_ s: String) -> String { "\"" + s + "\"" }
}

/// A small seeded generator, so a failing seed reproduces exactly.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
