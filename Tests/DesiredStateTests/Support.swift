import DesiredState
import Diagnostics
import Foundation
import XCTest

/// The repository's root, found from this file's place.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

func example(_ name: String) -> String { repositoryRoot + "/examples/" + name }

/// Loads files with TLS paths resolved under an empty scratch root.
func load(_ paths: [String], settings: AgentSettings = AgentSettings()) -> DesiredStateLoader.Result {
    DesiredStateLoader.load(paths: paths, root: HostRoot("/nonexistent-root"), settings: settings)
}

func load(text: String, file: String = "t.yaml", settings: AgentSettings = AgentSettings()) -> DesiredStateLoader.Result {
    DesiredStateLoader.load(text: text, file: file, root: HostRoot("/nonexistent-root"), settings: settings)
}

extension DesiredStateLoader.Result {
    func registry(_ source: String, file: StaticString = #filePath, line: UInt = #line) throws -> Registry {
        try XCTUnwrap(model.registries.first { $0.source.description == source }, "no registry \(source) in \(model.registries.map(\.source))", file: file, line: line)
    }

    var errorTexts: [String] { diagnostics.errors.map(\.description) }
}

func loc(_ file: String, _ line: Int, _ column: Int) -> SourceLocation { SourceLocation(file: file, line: line, column: column) }
