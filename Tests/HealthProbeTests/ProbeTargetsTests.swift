import DesiredState
import HealthProbe
import XCTest

final class ProbeTargetsTests: XCTestCase {
    func testDistinctEndpointsAndTheirAPIRoots() {
        let model = MirrorModel(registries: [
            Registry(source: .host("docker.io"), mirrors: [
                MirrorEndpoint(scheme: .https, host: "m.example:5000"),
                MirrorEndpoint(scheme: .https, host: "m.example:5000", path: "/dockerhub"),
                MirrorEndpoint(scheme: .https, host: "art.example", path: "/api/docker/hub/v2", overridePath: true),
            ]),
            Registry(source: .host("ghcr.io"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example:5000", path: "/ghcr")]),
            Registry(source: .host("quay.io"), mirrors: [MirrorEndpoint(scheme: .https, host: "m.example:5000", tls: TLSSettings(skipVerify: true))]),
        ])
        let targets = ProbeTargets.from(model)
        XCTAssertEqual(targets.map(\.url), ["https://m.example:5000/v2/", "https://art.example/api/docker/hub/v2/", "https://m.example:5000/v2/"])
        XCTAssertEqual(targets[0].registries, ["docker.io", "ghcr.io"])
        XCTAssertEqual(targets[2].tls.skipVerify, true, "the same URL with other TLS settings is probed on its own")
    }
}
