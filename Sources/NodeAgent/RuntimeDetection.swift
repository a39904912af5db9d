import DesiredState
import Foundation
import RuntimeWriters

/// Facts about the installed runtimes that only running them can tell.
enum RuntimeDetection {
    /// containerd's version from `containerd --version` under the root, when it can be run.
    static func containerdVersion(root: HostRoot) -> String? {
        for candidate in ["/usr/bin/containerd", "/usr/local/bin/containerd"] {
            let path = root.path(candidate)
            guard FileManager.default.isExecutableFile(atPath: path) else { continue }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = ["--version"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1" or "... v2.1.3 <commit>"
            let words = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
            if let word = words.first(where: { $0.drop(while: { $0 == "v" }).first?.isNumber == true && $0.contains(".") }) {
                return String(word)
            }
        }
        return nil
    }

    static func containerdFeatures(root: HostRoot) -> ContainerdFeatures {
        ContainerdFeatures(version: containerdVersion(root: root))
    }
}
