import Diagnostics
import MarkedYAML

/// OpenShift `ImageDigestMirrorSet`, `ImageTagMirrorSet` and `ImageContentSourcePolicy`.
///
/// Sources and mirrors have no scheme (HTTPS unless listed in `insecureRegistries`); a mirror
/// path is the repository namespace the source is kept under. Digest sets serve digest pulls
/// only, tag sets tag pulls only.
enum OpenShiftDialect {
    static func decode(_ fields: FieldReader, kind: String, context: DecodingContext, into result: inout DecodedDocuments) {
        let (listKey, pullFrom, hasPolicy): (String, PullFrom, Bool) =
            switch kind {
            case "ImageDigestMirrorSet": ("imageDigestMirrors", .digestOnly, true)
            case "ImageTagMirrorSet": ("imageTagMirrors", .tagOnly, true)
            default: ("repositoryDigestMirrors", .digestOnly, false)
            }
        fields.reportUnknown(Dialect.objectKeys + ["spec"], into: &result.diagnostics)
        do {
            let spec = try FieldReader(try fields.required("spec"), "spec")
            spec.reportUnknown([listKey], into: &result.diagnostics)
            let entries = try spec.value(listKey)?.list("spec.\(listKey)") ?? []
            for (index, entry) in entries.enumerated() {
                do {
                    let what = "spec.\(listKey)[\(index)]"
                    let e = try FieldReader(entry, what)
                    e.reportUnknown(hasPolicy ? ["source", "mirrors", "mirrorSourcePolicy"] : ["source", "mirrors"], into: &result.diagnostics)
                    let sourceNode = try e.required("source")
                    let source = try References.source(
                        try sourceNode.string("\(what).source"), forms: [.repository, .wildcardDomain], at: sourceNode.location)
                    let policy = hasPolicy ? try Dialect.policy(e.value("mirrorSourcePolicy")) : nil
                    var mirrors: [MirrorEndpoint] = []
                    for mirrorNode in try e.value("mirrors")?.list("\(what).mirrors") ?? [] {
                        do {
                            let text = try mirrorNode.string("each mirror")
                            if text.hasPrefix("*") {
                                throw Diagnostic.error("mirror \(References.quoted(text)): a \"*.\" wildcard is only accepted as a source", at: mirrorNode.location)
                            }
                            let parsed = try References.mirror(
                                text, defaultScheme: .httpsUnlessInsecure(context.insecureRegistries),
                                pathMeaning: .repositoryNamespace, allowScheme: false, at: mirrorNode.location)
                            mirrors.append(
                                MirrorEndpoint(
                                    scheme: parsed.scheme, host: parsed.host, path: parsed.path,
                                    capabilities: pullFrom == .digestOnly ? [.pull] : [.pull, .resolve],
                                    pullFrom: pullFrom, origins: [mirrorNode.location]))
                        } catch {
                            result.diagnostics.append(error)
                        }
                    }
                    result.declarations.append(
                        RegistryDeclaration(
                            source: source, location: sourceNode.location, policy: policy?.0,
                            policyLocation: policy?.1, mirrors: mirrors, isOpenShift: true))
                } catch {
                    result.diagnostics.append(error)
                }
            }
        } catch {
            result.diagnostics.append(error)
        }
    }
}
