@testable import DesiredState
import Foundation
import XCTest

@testable import HealthProbe

/// `WWW-Authenticate` challenges as registries send them (distribution, Docker Hub, Harbor).
final class ManifestAuthTests: XCTestCase {
    func testBearerChallenge() {
        let c = AuthChallenge.parse(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#)
        XCTAssertEqual(c?.scheme, "bearer")
        XCTAssertEqual(c?.parameters["realm"], "https://auth.docker.io/token")
        XCTAssertEqual(c?.parameters["service"], "registry.docker.io")
        XCTAssertEqual(c?.parameters["scope"], "repository:library/nginx:pull")
    }

    func testBasicChallengeAndEscapes() {
        let c = AuthChallenge.parse(#"Basic realm="a \"quoted\" realm", charset=UTF-8"#)
        XCTAssertEqual(c?.scheme, "basic")
        XCTAssertEqual(c?.parameters["realm"], #"a "quoted" realm"#)
        XCTAssertEqual(c?.parameters["charset"], "UTF-8")
        XCTAssertEqual(AuthChallenge.parse("Negotiate")?.scheme, "negotiate")
        XCTAssertNil(AuthChallenge.parse(""))
    }

    func testCredentialsFromK3sAuth() {
        let both = HostCredentials(host: "h", username: "u", password: Secret("p:q"), auth: nil, identityToken: nil, location: .init(file: "f", line: 1, column: 1))
        XCTAssertEqual(ProbeCredentials(both), ProbeCredentials(username: "u", password: "p:q"))
        let encoded = HostCredentials(host: "h", username: nil, password: nil, auth: Secret(Data("x:y:z".utf8).base64EncodedString()), identityToken: nil, location: .init(file: "f", line: 1, column: 1))
        XCTAssertEqual(ProbeCredentials(encoded), ProbeCredentials(username: "x", password: "y:z"))
        XCTAssertEqual("\(ProbeCredentials(username: "u", password: "secret"))", "<credentials>")
        let tokenOnly = HostCredentials(host: "h", username: nil, password: nil, auth: nil, identityToken: Secret("t"), location: .init(file: "f", line: 1, column: 1))
        XCTAssertNil(ProbeCredentials(tokenOnly))
    }
}
