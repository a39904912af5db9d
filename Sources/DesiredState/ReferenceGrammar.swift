/// The reference grammar the dialects check, for other modules (`explain` parses image
/// references with it, so a reference is refused by the same rules a source is).
public enum ReferenceGrammar {
    /// What is wrong with `host[:port]`, or nil when it is a valid registry host.
    public static func hostProblem(_ text: String) -> String? { References.hostProblem(text) }
    /// Whether one repository path component is valid (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`).
    public static func isRepositoryComponent(_ s: Substring) -> Bool { References.isRepositoryComponent(s) }
}
