import DesiredState
import Foundation
import RuntimeWriters
import XCTest

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Each example, rendered for both runtimes, byte for byte against Golden/<example>/.
/// `UPDATE_GOLDEN=1 swift test` rewrites the golden files (review the diff before committing).
final class GoldenTests: XCTestCase {
    let examples = ["configmap-wrapped", "icsp", "k3s-registries", "mirrorset", "openshift-idms-itms", "vkdr-mirror-registry"]

    func render(_ example: String) -> [String: String] {
        // The repository is the root, so headers name /examples/<file>, whatever the checkout path.
        let root = HostRoot(repositoryRoot)
        let loaded = DesiredStateLoader.load(paths: [root.path("/examples/\(example).yaml")], root: root, settings: AgentSettings())
        XCTAssertTrue(loaded.isValid, "\(loaded.diagnostics.errors)")
        var files: [String: String] = [:]
        for file in ContainerdHostsRenderer(hostsDirectory: "/etc/containerd/certs.d", root: root).render(loaded.model).files {
            files["containerd/" + file.relativePath] = file.contents
        }
        for file in CRIORegistriesRenderer(dropInPath: "/etc/containers/registries.conf.d/99-mirror-agent.conf", root: root).render(loaded.model).files {
            files["crio/" + file.relativePath] = file.contents
        }
        return files
    }

    func testExamplesRenderToTheGoldenFiles() throws {
        let golden = repositoryRoot + "/Tests/RuntimeWritersTests/Golden"
        let update = ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1"
        for example in examples {
            let rendered = render(example)
            XCTAssertFalse(rendered.isEmpty, example)
            let directory = golden + "/" + example
            if update {
                try? FileManager.default.removeItem(atPath: directory)
                for (path, contents) in rendered {
                    let full = directory + "/" + path
                    try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    try contents.write(toFile: full, atomically: true, encoding: .utf8)
                }
                continue
            }
            let expected = try goldenFiles(in: directory)
            XCTAssertEqual(Set(rendered.keys), Set(expected.keys), "\(example): the set of rendered files")
            for (path, contents) in rendered {
                XCTAssertEqual(contents, expected[path], "\(example)/\(path)")
            }
        }
    }

    private func goldenFiles(in directory: String) throws -> [String: String] {
        var files: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return files }
        for case let path as String in walker where path.hasSuffix(".toml") || path.hasSuffix(".conf") {
            files[path] = try String(contentsOfFile: directory + "/" + path, encoding: .utf8)
        }
        return files
    }
}
